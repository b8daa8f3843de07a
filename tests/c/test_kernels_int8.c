/*
 * Stand-alone checks of the int8 kernels, meant to run under
 * -fsanitize=address,undefined: every buffer is allocated at its exact size
 * (scratch at exactly *_get_buffer_size bytes), so any access past what a
 * kernel may touch is reported, and any signed overflow or bad shift in the
 * integer arithmetic is an error. Bit-exactness against numpy is the Python
 * tests' job (tests/kernels/test_kernels_int8*.py); here: the requantization's
 * known answers at the ends of its range, outputs inside the clamp, and the
 * identities (1x1 pools, identity rescales) on randomized shapes with zero
 * points at both ends of the int8 range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medyate.h"
#include "mdy_requantize.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        ++checks;                                                   \
        if (!(cond)) {                                              \
            ++failures;                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                           \
            fprintf(stderr, "\n");                                  \
        }                                                           \
    } while (0)

static uint32_t rng_state = 2463534242u;
static uint32_t next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
static int32_t irand(int32_t lo, int32_t hi) /* uniform in [lo, hi] */
{
    return lo + (int32_t)(next() % (uint32_t)(hi - lo + 1));
}

static int8_t *codes(size_t n) /* exact size, random codes */
{
    int8_t *p = (int8_t *)malloc(n ? n : 1);
    size_t i;
    if (!p)
        exit(2);
    for (i = 0; i < n; ++i)
        p[i] = (int8_t)irand(-128, 127);
    return p;
}

static int32_t *words(size_t n)
{
    int32_t *p = (int32_t *)malloc((n ? n : 1) * sizeof(int32_t));
    if (!p)
        exit(2);
    memset(p, 0x5A, (n ? n : 1) * sizeof(int32_t));
    return p;
}

static int32_t zero_point(void)
{
    static const int32_t ends[] = {-128, 127, 0};
    return (next() & 1) ? ends[next() % 3] : irand(-128, 127);
}

static int inside(const int8_t *y, size_t n, int32_t lo, int32_t hi)
{
    size_t i;
    for (i = 0; i < n; ++i)
        if (y[i] < lo || y[i] > hi)
            return 0;
    return 1;
}

/* ------------------------------------------------------------ requantize */

static void test_requantize_known_answers(void)
{
    /* from medyate.planner.quant.requantize, itself checked against the
     * rounding rules in Python integers */
    static const struct { int64_t v; int32_t m, s, want; } cases[] = {
        {3LL, 1073741824, 0, 2},
        {-3LL, 1073741824, 0, -1},
        {6LL, 1073741824, -1, 2},
        {-6LL, 1073741824, -1, -2},
        {-3LL, 1073741824, -1, -1},
        {-2147483647LL - 1, -2147483647 - 1, 0, 2147483647},
        {2147483647LL, 2147483647, 30, 2147483646},
        {-2147483647LL - 1, 2147483647, 30, -2147483647},
        {-2147483647LL - 1, 2147483647, -31, -1},
        {2147483647LL, 2147483647, -31, 1},
        {123456789LL, 1518500250, -7, 682009},
        {-987654321LL, 1234567890, -20, -541},
        {77LL, 2147483647, 5, 2464},
        {-77LL, 1073741824, 12, -157696},
        {0LL, 1073741824, 0, 0},
        {-1LL, 1073741824, -31, 0},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const int32_t got = mdy_requantize((int32_t)cases[i].v, cases[i].m, cases[i].s);
        CHECK(got == cases[i].want, "requantize(%lld, %ld, %ld) = %ld, want %ld",
              (long long)cases[i].v, (long)cases[i].m, (long)cases[i].s, (long)got,
              (long)cases[i].want);
    }
    /* the pools' mean: ties to even, the ends of the shift range */
    CHECK(mdy_requantize_mean(6, 4, 1 << 30, 1) == 2, "mean 1.5 -> 2");
    CHECK(mdy_requantize_mean(10, 4, 1 << 30, 1) == 2, "mean 2.5 -> 2");
    CHECK(mdy_requantize_mean(-10, 4, 1 << 30, 1) == -2, "mean -2.5 -> -2");
    CHECK(mdy_requantize_mean(-11, 4, 1 << 30, 1) == -3, "mean -2.75 -> -3");
    CHECK(mdy_requantize_mean(255 * 4194304, 4194304, 2147483647, 30) == 2147483647,
          "a mean beyond int32 saturates");
    CHECK(mdy_requantize_mean(-255 * 4194304, 4194304, 2147483647, 30) == -2147483647,
          "a mean beyond int32 saturates (negative)");
    CHECK(mdy_requantize_mean(-255, 1, 2147483647, -31) == 0, "tiny scale -> 0");
}

/* ------------------------------------------------------------ convs */

static void quant_arrays(int32_t n, int32_t **mult, int32_t **shift)
{
    int32_t i;
    *mult = words((size_t)n);
    *shift = words((size_t)n);
    for (i = 0; i < n; ++i) {
        (*mult)[i] = (int32_t)((1u << 30) + (next() >> 2));
        (*shift)[i] = irand(-14, 2);
    }
}

static void test_convs(void)
{
    int t;
    for (t = 0; t < 300; ++t) {
        mdy_conv_params p;
        mdy_s8_conv_quant q;
        const int dw = t & 1;
        int32_t pb, pr, *mult, *shift, *bias;
        int8_t *x, *w, *y;
        size_t ny;
        p.k_h = irand(1, 5);
        p.k_w = irand(1, 5);
        p.stride_h = irand(1, 3);
        p.stride_w = irand(1, 3);
        p.pad_top = irand(0, p.k_h - 1);
        pb = irand(0, p.k_h - 1);
        p.pad_left = irand(0, p.k_w - 1);
        pr = irand(0, p.k_w - 1);
        p.in_h = irand(p.k_h - p.pad_top - pb > 1 ? p.k_h - p.pad_top - pb : 1, 9);
        p.in_w = irand(p.k_w - p.pad_left - pr > 1 ? p.k_w - p.pad_left - pr : 1, 9);
        p.in_c = irand(1, 9);
        p.out_c = dw ? p.in_c * irand(1, 3) : irand(1, 11);
        p.groups = dw ? p.in_c : 1;
        p.out_h = (p.in_h + p.pad_top + pb - p.k_h) / p.stride_h + 1;
        p.out_w = (p.in_w + p.pad_left + pr - p.k_w) / p.stride_w + 1;
        quant_arrays(p.out_c, &mult, &shift);
        bias = words((size_t)p.out_c);
        {
            int32_t o;
            for (o = 0; o < p.out_c; ++o)
                bias[o] = irand(-(1 << 20), 1 << 20);
        }
        q.x_zero = zero_point();
        q.y_zero = irand(-20, 20);
        q.act_min = irand(-128, 0);
        q.act_max = irand(q.act_min, 127);
        q.multiplier = mult;
        q.shift = shift;
        x = codes((size_t)p.in_h * p.in_w * p.in_c);
        w = codes((size_t)p.out_c * p.k_h * p.k_w * (dw ? 1 : p.in_c));
        ny = (size_t)p.out_h * p.out_w * p.out_c;
        y = codes(ny);
        if (dw) {
            CHECK(mdy_depthwise_conv2d_nhwc_s8_get_buffer_size(&p) == 0, "dw scratch");
            mdy_depthwise_conv2d_nhwc_s8(&p, &q, x, w, (t & 2) ? bias : NULL, y);
        } else {
            CHECK(mdy_conv2d_nhwc_s8_get_buffer_size(&p) == 0, "conv scratch");
            mdy_conv2d_nhwc_s8(&p, &q, x, w, (t & 2) ? bias : NULL, y);
        }
        CHECK(inside(y, ny, q.act_min, q.act_max), "conv output outside the clamp (case %d)", t);
        if (!dw && p.out_h == 1 && p.out_w == 1 && p.k_h == p.in_h && p.k_w == p.in_w &&
            p.pad_top == 0 && p.pad_left == 0) {
            /* a conv covering the map exactly is a fully connected layer */
            int8_t *y2 = codes((size_t)p.out_c);
            mdy_fully_connected_s8(p.in_h * p.in_w * p.in_c, p.out_c, &q, x, w,
                                   (t & 2) ? bias : NULL, y2);
            CHECK(memcmp(y, y2, (size_t)p.out_c) == 0, "conv over the whole map != fc");
            free(y2);
        }
        free(x); free(w); free(y); free(mult); free(shift); free(bias);
    }
}

/* ------------------------------------------------------------ pools */

static mdy_s8_rescale identity(int32_t zero)
{
    mdy_s8_rescale r;
    r.x_zero = r.y_zero = zero;
    r.multiplier = 1 << 30; /* 0.5 * 2^1 = 1 */
    r.shift = 1;
    r.act_min = -128;
    r.act_max = 127;
    return r;
}

static void test_pools(void)
{
    int t;
    for (t = 0; t < 300; ++t) {
        mdy_pool_params p;
        mdy_s8_rescale q;
        int32_t pb, pr, *scratch;
        int8_t *x, *y;
        size_t nx, ny;
        p.k_h = irand(1, 4);
        p.k_w = irand(1, 4);
        p.stride_h = irand(1, 3);
        p.stride_w = irand(1, 3);
        p.pad_top = irand(0, p.k_h - 1);
        pb = irand(0, p.k_h - 1);
        p.pad_left = irand(0, p.k_w - 1);
        pr = irand(0, p.k_w - 1);
        p.in_h = irand(p.k_h - p.pad_top - pb > 1 ? p.k_h - p.pad_top - pb : 1, 9);
        p.in_w = irand(p.k_w - p.pad_left - pr > 1 ? p.k_w - p.pad_left - pr : 1, 9);
        p.c = irand(1, 9);
        p.out_h = (p.in_h + p.pad_top + pb - p.k_h) / p.stride_h + 1;
        p.out_w = (p.in_w + p.pad_left + pr - p.k_w) / p.stride_w + 1;
        p.count_include_pad = t & 1;
        q.x_zero = zero_point();
        q.y_zero = irand(-40, 40);
        q.multiplier = (int32_t)((1u << 30) + (next() >> 2));
        q.shift = irand(-3, 2);
        q.act_min = irand(-128, 0);
        q.act_max = irand(q.act_min, 127);
        nx = (size_t)p.in_h * p.in_w * p.c;
        ny = (size_t)p.out_h * p.out_w * p.c;
        x = codes(nx);
        y = codes(ny);
        scratch = (int32_t *)malloc((size_t)mdy_avgpool_nhwc_s8_get_buffer_size(&p));
        mdy_avgpool_nhwc_s8(&p, &q, x, y, scratch);
        CHECK(inside(y, ny, q.act_min, q.act_max), "avgpool output outside the clamp");
        mdy_maxpool_nhwc_s8(&p, &q, x, y, NULL);
        CHECK(inside(y, ny, q.act_min, q.act_max), "maxpool output outside the clamp");
        {   /* the backward mask at its exact size: the fp32 max pool's on the
             * dequantized input, and the same output again */
            const size_t nb = (size_t)mdy_maxpool_nhwc_f32_mask_bytes(&p);
            uint8_t *m8 = (uint8_t *)malloc(nb ? nb : 1), *m32 = (uint8_t *)malloc(nb ? nb : 1);
            int8_t *y2 = codes(ny);
            float *xf = (float *)malloc(nx * sizeof(float));
            float *yf = (float *)malloc(ny * sizeof(float));
            memset(m8, 0xA5, nb ? nb : 1);
            mdy_maxpool_nhwc_s8(&p, &q, x, y2, m8);
            mdy_maxpool_nhwc_s8(&p, &q, x, y, NULL);
            CHECK(memcmp(y, y2, ny) == 0, "maxpool output depends on the mask");
            mdy_dequantize_s8_f32((int32_t)nx, x, 0.03f, q.x_zero, xf);
            mdy_maxpool_nhwc_f32(&p, xf, yf, m32);
            CHECK(nb == 0 || memcmp(m8, m32, nb) == 0, "s8 maxpool mask != fp32 mask");
            free(m8); free(m32); free(y2); free(xf); free(yf);
        }
        free(scratch);
        free(y);
        {   /* global average pool with its exact scratch */
            int8_t *g = codes((size_t)p.c);
            int32_t *gs = (int32_t *)malloc(
                (size_t)mdy_global_avgpool_nhwc_s8_get_buffer_size(p.in_h, p.in_w, p.c));
            mdy_global_avgpool_nhwc_s8(p.in_h, p.in_w, p.c, &q, x, g, gs);
            CHECK(inside(g, (size_t)p.c, q.act_min, q.act_max), "global avgpool clamp");
            free(g);
            free(gs);
        }
        {   /* 1x1 windows, stride 1, identity rescale: pools copy */
            mdy_pool_params u = p;
            mdy_s8_rescale id = identity(q.x_zero);
            int8_t *z = codes(nx);
            int32_t *zs;
            u.k_h = u.k_w = u.stride_h = u.stride_w = 1;
            u.pad_top = u.pad_left = 0;
            u.out_h = u.in_h;
            u.out_w = u.in_w;
            zs = (int32_t *)malloc((size_t)mdy_avgpool_nhwc_s8_get_buffer_size(&u));
            mdy_avgpool_nhwc_s8(&u, &id, x, z, zs);
            CHECK(memcmp(x, z, nx) == 0, "1x1 avgpool is not a copy");
            memset(z, 0, nx);
            mdy_maxpool_nhwc_s8(&u, &id, x, z, NULL);
            CHECK(memcmp(x, z, nx) == 0, "1x1 maxpool is not a copy");
            free(z);
            free(zs);
        }
        free(x);
    }
}

/* ------------------------------------------------------------ elementwise */

static void test_elementwise(void)
{
    int t;
    for (t = 0; t < 100; ++t) {
        const int32_t hw = irand(1, 40), ca = irand(1, 9), cb = irand(1, 9);
        const size_t n = (size_t)hw * ca;
        int8_t *a = codes(n), *b = codes(n), *y = codes(n), *s = codes((size_t)ca);
        int8_t *cat = codes((size_t)hw * (ca + cb)), *bb = codes((size_t)hw * cb);
        int8_t table[256];
        mdy_s8_add_quant aq;
        mdy_s8_mul_quant mq;
        mdy_s8_rescale ia = identity(zero_point()), ib = identity(ia.y_zero);
        float *f = (float *)malloc(n * sizeof(float));
        int32_t i, k;

        aq.a_zero = zero_point();
        aq.b_zero = zero_point();
        aq.y_zero = irand(-20, 20);
        aq.a_multiplier = (int32_t)((1u << 30) + (next() >> 2));
        aq.b_multiplier = (int32_t)((1u << 30) + (next() >> 2));
        aq.a_shift = irand(-3, -1);
        aq.b_shift = irand(-3, -1);
        aq.y_multiplier = (int32_t)((1u << 30) + (next() >> 2));
        aq.y_shift = irand(-21, -18);
        aq.act_min = irand(-128, 0);
        aq.act_max = irand(aq.act_min, 127);
        mdy_add_s8((int32_t)n, &aq, a, b, y);
        CHECK(inside(y, n, aq.act_min, aq.act_max), "add output outside the clamp");
        mdy_add_s8((int32_t)n, &aq, a, b, a); /* in place */
        CHECK(memcmp(a, y, n) == 0, "add in place differs");

        mq.x_zero = zero_point();
        mq.s_zero = -128;
        mq.y_zero = irand(-20, 20);
        mq.multiplier = (int32_t)((1u << 30) + (next() >> 2));
        mq.shift = irand(-9, -6);
        mq.act_min = -128;
        mq.act_max = 127;
        mdy_mul_channel_nhwc_s8(hw, ca, &mq, b, s, y);
        mdy_mul_channel_nhwc_s8(hw, ca, &mq, b, s, b); /* in place */
        CHECK(memcmp(b, y, n) == 0, "mul in place differs");

        mdy_concat_channels_nhwc_s8(hw, ca, cb, &ia, &ib, a, bb, cat);
        for (i = 0; i < hw; ++i)
            for (k = 0; k < ca + cb; ++k)
                CHECK(cat[i * (ca + cb) + k] ==
                      (k < ca ? a[i * ca + k] : bb[i * cb + k - ca]), "concat copy");

        for (i = 0; i < 256; ++i)
            table[i] = (int8_t)(127 - i);           /* code -> -1 - code */
        mdy_table_s8((int32_t)n, table, a, y);
        for (i = 0; i < (int32_t)n; ++i)
            CHECK(y[i] == (int8_t)(-1 - a[i]), "table lookup");

        mdy_dequantize_s8_f32((int32_t)n, a, 0.05f, ia.x_zero, f);
        mdy_quantize_f32_s8((int32_t)n, f, 0.05f, ia.x_zero, y);
        CHECK(memcmp(a, y, n) == 0, "quantize(dequantize(x)) != x");

        free(a); free(b); free(y); free(s); free(cat); free(bb); free(f);
    }
}

/* ------------------------------------------------------------ training */

static float *floats(size_t n)
{
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    size_t i;
    if (!p)
        exit(2);
    for (i = 0; i < n; ++i)
        p[i] = (float)irand(-1000, 1000) / 1000.0f;
    return p;
}

static void test_training(void)
{
    int t;
    for (t = 0; t < 200; ++t) {
        mdy_conv_params p;
        const int dw = t & 1;
        int32_t pb, k, n_sel = 0, slice, i;
        uint16_t sel[9];
        int8_t *maps, *w, *y;
        float *dy, *dx, *g, *ws;
        uint8_t *mask;
        uint32_t seed = (uint32_t)t;
        size_t nx, ny, nw;
        p.k_h = p.k_w = irand(1, 5);
        p.stride_h = p.stride_w = irand(1, 3);
        p.pad_top = p.pad_left = irand(0, p.k_h - 1);
        pb = irand(0, p.k_h - 1);
        p.in_h = irand(p.k_h - p.pad_top - pb > 1 ? p.k_h - p.pad_top - pb : 1, 8);
        p.in_w = irand(p.k_w - p.pad_left - pb > 1 ? p.k_w - p.pad_left - pb : 1, 8);
        p.in_c = irand(1, 9);
        p.out_c = dw ? p.in_c * irand(1, 2) : irand(1, 9);
        p.groups = dw ? p.in_c : 1;
        p.out_h = (p.in_h + p.pad_top + pb - p.k_h) / p.stride_h + 1;
        p.out_w = (p.in_w + p.pad_left + pb - p.k_w) / p.stride_w + 1;
        for (k = 0; k < p.in_c; ++k)
            if (next() & 1)
                sel[n_sel++] = (uint16_t)k;
        if (t % 7 == 0)
            sel[n_sel++] = (uint16_t)(p.in_c + 3); /* out of range: skipped */
        slice = (dw ? p.out_c / p.in_c : p.out_c) * p.k_h * p.k_w;
        nx = (size_t)p.in_h * p.in_w * p.in_c;
        ny = (size_t)p.out_h * p.out_w * p.out_c;
        nw = (size_t)p.out_c * p.k_h * p.k_w * (dw ? 1 : p.in_c);
        maps = codes((size_t)n_sel * p.in_h * p.in_w);
        w = codes(nw);
        y = codes(ny);
        dy = floats(ny);
        dx = floats(nx);
        g = floats((size_t)n_sel * slice);
        ws = floats((size_t)p.out_c);
        for (i = 0; i < p.out_c; ++i)
            ws[i] = 0.001f + (float)i * 0.0005f;
        mask = (uint8_t *)malloc((ny + 7) / 8);
        if (dw) {
            mdy_depthwise_conv2d_nhwc_s8_wgrad(&p, maps, zero_point(), 0.02f, sel, n_sel, dy, g);
            mdy_depthwise_conv2d_nhwc_s8_igrad(&p, w, ws, dy, dx, t & 2);
        } else {
            mdy_conv2d_nhwc_s8_wgrad(&p, maps, zero_point(), 0.02f, sel, n_sel, dy, g);
            mdy_conv2d_nhwc_s8_igrad(&p, w, ws, dy, dx, t & 2);
        }
        mdy_clamp_mask_s8((int32_t)ny, y, -100, 100, mask);
        for (i = 0; i < (int32_t)ny; ++i)
            CHECK(((mask[i >> 3] >> (i & 7)) & 1) == (y[i] > -100 && y[i] < 100), "mask bit");
        for (k = 0; k < n_sel; ++k) {
            if (sel[k] >= p.in_c)
                continue;
            if (dw) {
                const int32_t m = p.out_c / p.in_c;
                mdy_sgd_slice_s8(m, p.k_h * p.k_w, w + (size_t)sel[k] * m * p.k_h * p.k_w, 1,
                                 ws + sel[k] * m, g + (size_t)k * slice, 0.1f, &seed);
            } else {
                mdy_sgd_slice_s8(p.out_c, p.k_h * p.k_w, w + sel[k], p.in_c, ws,
                                 g + (size_t)k * slice, 0.1f, &seed);
            }
        }
        for (i = 0; i < (int32_t)nw; ++i)
            CHECK(w[i] >= -128, "weights"); /* touches every weight after the update */
        {   /* the bias: exact-size arrays, extreme codes */
            int32_t *bb = words((size_t)p.out_c);
            float *bg = floats((size_t)p.out_c);
            for (i = 0; i < p.out_c; ++i)
                bb[i] = (i & 1) ? INT32_MAX : INT32_MIN;
            mdy_sgd_bias_s32(p.out_c, bb, ws, bg, 100.0f, &seed);
            free(bb);
            free(bg);
        }
        {   /* fully connected: the same kernels on a 1x1 map */
            const int32_t n_in = p.in_c * 3, n_out = p.out_c;
            int8_t *fw = codes((size_t)n_in * n_out), *xv = codes((size_t)n_sel);
            float *fdx = floats((size_t)n_in), *fg = floats((size_t)n_sel * n_out);
            mdy_fully_connected_s8_wgrad(n_in, n_out, xv, 3, 0.05f, sel, n_sel, dy, fg);
            mdy_fully_connected_s8_igrad(n_in, n_out, fw, ws, dy, fdx, 0);
            free(fw); free(xv); free(fdx); free(fg);
        }
        free(maps); free(w); free(y); free(dy); free(dx); free(g); free(ws); free(mask);
    }
}

/* The backward kernels that dequantize a saved int8 tensor: their fp32 twins
 * on mdy_dequantize_s8_f32's output, bit for bit, with exact-size buffers and
 * the outputs written in place over dy. */
static void test_dequantizing_backward(void)
{
    int t;
    for (t = 0; t < 100; ++t) {
        const int32_t hw = irand(1, 40), c = irand(1, 9), acc = t & 1;
        const size_t n = (size_t)hw * c;
        const int32_t zx = zero_point(), zs = zero_point();
        const float sx = 0.001f * (float)irand(1, 100), ss = 0.001f * (float)irand(1, 100);
        int8_t *x = codes(n), *s = codes((size_t)c);
        float *xf = (float *)malloc(n * sizeof(float)), *sf = (float *)malloc(c * sizeof(float));
        float *dy = floats(n), *d8 = floats(n), *d32 = (float *)malloc(n * sizeof(float));
        float *g8 = floats((size_t)c), *g32 = (float *)malloc(c * sizeof(float));

        mdy_dequantize_s8_f32((int32_t)n, x, sx, zx, xf);
        mdy_dequantize_s8_f32(c, s, ss, zs, sf);

        memcpy(d32, d8, n * sizeof(float));
        mdy_hardswish_s8_igrad((int32_t)n, x, sx, zx, dy, d8, acc);
        mdy_hardswish_f32_igrad((int32_t)n, xf, dy, d32, acc);
        CHECK(memcmp(d8, d32, n * sizeof(float)) == 0, "hardswish s8 igrad != fp32");
        memcpy(d32, dy, n * sizeof(float));
        mdy_hardswish_s8_igrad((int32_t)n, x, sx, zx, d32, d32, 0); /* in place */
        mdy_hardswish_f32_igrad((int32_t)n, xf, dy, d8, 0);
        CHECK(memcmp(d8, d32, n * sizeof(float)) == 0, "hardswish s8 igrad in place");

        memcpy(d32, d8, n * sizeof(float));
        mdy_mul_channel_nhwc_s8_igrad_x(hw, c, s, ss, zs, dy, d8, acc);
        mdy_mul_channel_nhwc_f32_igrad_x(hw, c, sf, dy, d32, acc);
        CHECK(memcmp(d8, d32, n * sizeof(float)) == 0, "mul igrad_x s8 != fp32");
        memcpy(d32, dy, n * sizeof(float));
        mdy_mul_channel_nhwc_s8_igrad_x(hw, c, s, ss, zs, d32, d32, 0); /* in place */
        mdy_mul_channel_nhwc_f32_igrad_x(hw, c, sf, dy, d8, 0);
        CHECK(memcmp(d8, d32, n * sizeof(float)) == 0, "mul igrad_x s8 in place");

        memcpy(g32, g8, c * sizeof(float));
        mdy_mul_channel_nhwc_s8_igrad_s(hw, c, x, sx, zx, dy, g8, acc);
        mdy_mul_channel_nhwc_f32_igrad_s(hw, c, xf, dy, g32, acc);
        CHECK(memcmp(g8, g32, c * sizeof(float)) == 0, "mul igrad_s s8 != fp32");

        free(x); free(s); free(xf); free(sf); free(dy); free(d8); free(d32); free(g8); free(g32);
    }
}

int main(void)
{
    test_requantize_known_answers();
    test_convs();
    test_pools();
    test_elementwise();
    test_training();
    test_dequantizing_backward();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
