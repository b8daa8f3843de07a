/*
 * Stand-alone checks of the fp32 kernels, meant to run under
 * -fsanitize=address,undefined: every buffer is allocated at its exact size,
 * so any read or write past what a kernel may touch is reported.
 *
 * Gradients are checked against central finite differences of the forward
 * kernels (loss = sum r * y, accumulated in double), relative error <= 1e-3.
 * Shapes cover the boundary cases: 1x1 maps, kernels larger than the stride
 * and than the map, padding on every side, channel multipliers > 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medyate.h"

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

/* ---------------------------------------------------------------- utilities */

static uint32_t rng_state = 12345u;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / 8388608.0f - 1.0f;
}

static float *fbuf(size_t n) /* exact size, so ASan sees any overrun */
{
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    size_t i;
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (i = 0; i < n; ++i)
        p[i] = frand();
    return p;
}

static uint8_t *bbuf(size_t n)
{
    uint8_t *p = (uint8_t *)malloc(n ? n : 1);
    if (!p)
        exit(2);
    memset(p, 0xA5, n ? n : 1);
    return p;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; ++i)
        s += (double)a[i] * (double)b[i];
    return s;
}

static double rel_err(const float *a, const double *b, size_t n)
{
    double num = 0.0, den = 0.0;
    size_t i;
    for (i = 0; i < n; ++i) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += b[i] * b[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

/* A loss of the parameters a test perturbs: runs the forward kernel, returns
 * sum r * y in double. */
typedef double (*loss_fn)(void *ctx);

/* Central differences for elements idx[0..n) of param (all if idx is NULL),
 * using the float step actually taken as denominator. */
static void finite_diff(loss_fn f, void *ctx, float *param, const int32_t *idx, int32_t n,
                        float eps, double *out)
{
    int32_t k;
    for (k = 0; k < n; ++k) {
        const int32_t i = idx ? idx[k] : k;
        const float v = param[i];
        const float hi = v + eps, lo = v - eps;
        double fp, fm;
        param[i] = hi;
        fp = f(ctx);
        param[i] = lo;
        fm = f(ctx);
        param[i] = v;
        out[k] = (fp - fm) / ((double)hi - (double)lo);
    }
}

/* ---------------------------------------------------------------- convs */

typedef struct {
    mdy_conv_params p;
    int depthwise;
    float *x, *w, *b, *y, *r;
} conv_ctx;

static size_t conv_in(const mdy_conv_params *p) { return (size_t)p->in_h * p->in_w * p->in_c; }
static size_t conv_out(const mdy_conv_params *p) { return (size_t)p->out_h * p->out_w * p->out_c; }
static size_t conv_w(const mdy_conv_params *p, int dw)
{
    return (size_t)p->out_c * p->k_h * p->k_w * (dw ? 1 : p->in_c);
}

static double conv_loss(void *vc)
{
    conv_ctx *c = (conv_ctx *)vc;
    if (c->depthwise)
        mdy_depthwise_conv2d_nhwc_f32(&c->p, c->x, c->w, c->b, c->y);
    else
        mdy_conv2d_nhwc_f32(&c->p, c->x, c->w, c->b, c->y);
    return dot(c->y, c->r, conv_out(&c->p));
}

static mdy_conv_params make_conv(int32_t in_h, int32_t in_w, int32_t in_c, int32_t out_c,
                                 int32_t k_h, int32_t k_w, int32_t s_h, int32_t s_w,
                                 int32_t t, int32_t l, int32_t b, int32_t r, int dw)
{
    mdy_conv_params p;
    p.in_h = in_h; p.in_w = in_w; p.in_c = in_c; p.out_c = out_c;
    p.k_h = k_h; p.k_w = k_w; p.stride_h = s_h; p.stride_w = s_w;
    p.pad_top = t; p.pad_left = l;
    p.out_h = (in_h + t + b - k_h) / s_h + 1;
    p.out_w = (in_w + l + r - k_w) / s_w + 1;
    p.groups = dw ? in_c : 1;
    return p;
}

static void test_conv_case(const char *name, mdy_conv_params p, int dw)
{
    conv_ctx c;
    const size_t nx = conv_in(&p), ny = conv_out(&p), nw = conv_w(&p, dw);
    const int32_t m = p.out_c / p.in_c;
    const int32_t slice = dw ? m * p.k_h * p.k_w : p.out_c * p.k_h * p.k_w;
    const int32_t map = p.in_h * p.in_w;
    float *dx = fbuf(nx), *dx2 = fbuf(nx), *maps, *slices, *full;
    double *fd = (double *)malloc((nx > nw ? nx : nw) * sizeof(double));
    double *fdw = (double *)malloc((size_t)p.in_c * slice * sizeof(double));
    int32_t *idx = (int32_t *)malloc((size_t)slice * sizeof(int32_t));
    uint16_t *sel = (uint16_t *)malloc((size_t)p.in_c * sizeof(uint16_t));
    int32_t i, k, n_sel;
    double e;

    c.p = p;
    c.depthwise = dw;
    c.x = fbuf(nx);
    c.w = fbuf(nw);
    c.b = fbuf((size_t)p.out_c);
    c.y = fbuf(ny);
    c.r = fbuf(ny);

    /* input gradient: overwrite, then accumulate */
    if (dw)
        mdy_depthwise_conv2d_nhwc_f32_igrad(&p, c.w, c.r, dx, 0);
    else
        mdy_conv2d_nhwc_f32_igrad(&p, c.w, c.r, dx, 0);
    finite_diff(conv_loss, &c, c.x, NULL, (int32_t)nx, 0.5f, fd);
    e = rel_err(dx, fd, nx);
    CHECK(e <= 1e-3, "%s igrad vs finite differences: rel err %g", name, e);
    for (i = 0; i < (int32_t)nx; ++i)
        dx2[i] = 1.0f;
    if (dw)
        mdy_depthwise_conv2d_nhwc_f32_igrad(&p, c.w, c.r, dx2, 1);
    else
        mdy_conv2d_nhwc_f32_igrad(&p, c.w, c.r, dx2, 1);
    for (i = 0; i < (int32_t)nx; ++i)
        CHECK(fabsf(dx2[i] - (1.0f + dx[i])) <= 1e-5f * (1.0f + fabsf(dx[i])),
              "%s igrad accumulate at %d", name, (int)i);

    /* weight gradient, all channels, against finite differences */
    maps = fbuf((size_t)p.in_c * map);
    full = fbuf((size_t)p.in_c * slice);
    for (k = 0; k < p.in_c; ++k) {
        sel[k] = (uint16_t)k;
        for (i = 0; i < map; ++i)
            maps[(size_t)k * map + i] = c.x[(size_t)i * p.in_c + k];
    }
    for (i = 0; i < p.in_c * slice; ++i)
        full[i] = 0.0f;
    if (dw)
        mdy_depthwise_conv2d_nhwc_f32_wgrad(&p, maps, sel, p.in_c, c.r, full);
    else
        mdy_conv2d_nhwc_f32_wgrad(&p, maps, sel, p.in_c, c.r, full);
    for (k = 0; k < p.in_c; ++k) {
        /* slice element j of channel k lives at this flat index of the OHWI weight */
        for (i = 0; i < slice; ++i)
            idx[i] = dw ? k * slice + i : i * p.in_c + k;
        finite_diff(conv_loss, &c, c.w, idx, slice, 0.5f, fdw + (size_t)k * slice);
    }
    e = rel_err(full, fdw, (size_t)p.in_c * slice);
    CHECK(e <= 1e-3, "%s wgrad vs finite differences: rel err %g", name, e);

    /* sparse: every other channel, from the last one down, must reproduce the
     * full gradient's slices exactly */
    n_sel = 0;
    for (k = p.in_c - 1; k >= 0; k -= 2)
        ++n_sel;
    slices = fbuf((size_t)n_sel * slice);
    {
        float *smaps = fbuf((size_t)n_sel * map);
        uint16_t *ssel = (uint16_t *)malloc((size_t)n_sel * sizeof(uint16_t));
        int32_t j = 0;
        for (k = (p.in_c - 1) % 2; k < p.in_c; k += 2, ++j) {
            ssel[j] = (uint16_t)k;
            memcpy(smaps + (size_t)j * map, maps + (size_t)k * map, (size_t)map * sizeof(float));
        }
        for (i = 0; i < n_sel * slice; ++i)
            slices[i] = 0.0f;
        if (dw)
            mdy_depthwise_conv2d_nhwc_f32_wgrad(&p, smaps, ssel, n_sel, c.r, slices);
        else
            mdy_conv2d_nhwc_f32_wgrad(&p, smaps, ssel, n_sel, c.r, slices);
        for (j = 0; j < n_sel; ++j)
            CHECK(memcmp(slices + (size_t)j * slice, full + (size_t)ssel[j] * slice,
                         (size_t)slice * sizeof(float)) == 0,
                  "%s sparse slice %d differs from the full gradient", name, (int)ssel[j]);
        /* empty selection: nothing read, nothing written */
        if (dw)
            mdy_depthwise_conv2d_nhwc_f32_wgrad(&p, NULL, NULL, 0, c.r, NULL);
        else
            mdy_conv2d_nhwc_f32_wgrad(&p, NULL, NULL, 0, c.r, NULL);
        free(smaps);
        free(ssel);
    }

    /* bias gradient against finite differences of the forward */
    {
        float *db = fbuf((size_t)p.out_c);
        double *fdb = (double *)malloc((size_t)p.out_c * sizeof(double));
        for (i = 0; i < p.out_c; ++i)
            db[i] = 0.0f;
        mdy_bias_grad_nhwc_f32(p.out_h * p.out_w, p.out_c, c.r, db);
        finite_diff(conv_loss, &c, c.b, NULL, p.out_c, 0.5f, fdb);
        e = rel_err(db, fdb, (size_t)p.out_c);
        CHECK(e <= 1e-3, "%s bias grad: rel err %g", name, e);
        free(db);
        free(fdb);
    }
    CHECK((dw ? mdy_depthwise_conv2d_nhwc_f32_get_buffer_size(&p)
              : mdy_conv2d_nhwc_f32_get_buffer_size(&p)) >= 0, "%s buffer size", name);

    free(c.x); free(c.w); free(c.b); free(c.y); free(c.r);
    free(dx); free(dx2); free(maps); free(slices); free(full);
    free(fd); free(fdw); free(idx); free(sel);
}

static void test_convs(void)
{
    /* name, in_h, in_w, in_c, out_c, k_h, k_w, s_h, s_w, pads t l b r, depthwise */
    test_conv_case("dense 1x1 map, 3x3, pad all sides",
                   make_conv(1, 1, 3, 2, 3, 3, 1, 1, 1, 1, 1, 1, 0), 0);
    test_conv_case("dense 3x3 s2x1 asym pads",
                   make_conv(7, 6, 3, 4, 3, 3, 2, 1, 1, 0, 2, 1, 0), 0);
    test_conv_case("dense 5x5 > map, pads 2",
                   make_conv(3, 3, 2, 3, 5, 5, 1, 1, 2, 2, 2, 2, 0), 0);
    test_conv_case("dense 7x7 s2x1",
                   make_conv(9, 8, 2, 2, 7, 7, 2, 1, 3, 1, 3, 2, 0), 0);
    test_conv_case("pointwise s2x1",
                   make_conv(5, 4, 4, 3, 1, 1, 2, 1, 0, 0, 0, 0, 0), 0);
    test_conv_case("dense 2x2 s3 (stride > kernel)",
                   make_conv(7, 7, 2, 2, 2, 2, 3, 3, 0, 0, 0, 0, 0), 0);
    test_conv_case("depthwise 1x1 map, 3x3, pad all sides",
                   make_conv(1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1), 1);
    test_conv_case("depthwise m=2 5x3 s2x1",
                   make_conv(8, 6, 2, 4, 5, 3, 2, 1, 2, 1, 0, 1, 1), 1);
    test_conv_case("depthwise 7x7 s1x2 pads 3",
                   make_conv(9, 9, 3, 3, 7, 7, 1, 2, 3, 3, 3, 3, 1), 1);
    test_conv_case("depthwise m=3 4x2",
                   make_conv(5, 4, 2, 6, 4, 2, 1, 1, 0, 0, 1, 1, 1), 1);
}

static void test_wgrad_out_of_range_channel(void)
{
    /* the runtime rejects such selections; the kernels must still stay in bounds */
    mdy_conv_params p = make_conv(4, 4, 2, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1);
    float *maps = fbuf(16), *dy = fbuf(64), *sl = fbuf(2 * 9);
    float before[18];
    uint16_t sel[1] = {7};
    memcpy(before, sl, sizeof before);
    mdy_depthwise_conv2d_nhwc_f32_wgrad(&p, maps, sel, 1, dy, sl);
    CHECK(memcmp(before, sl, sizeof before) == 0, "depthwise wgrad touched a bad channel");
    free(maps); free(dy); free(sl);
    {
        float *xv = fbuf(1), *dy2 = fbuf(3), *fsl = fbuf(3);
        float fb[3];
        uint16_t fsel[1] = {9};
        memcpy(fb, fsl, sizeof fb);
        mdy_fully_connected_f32_wgrad(4, 3, xv, fsel, 1, dy2, fsl);
        CHECK(memcmp(fb, fsl, sizeof fb) == 0, "fc wgrad touched a bad feature");
        free(xv); free(dy2); free(fsl);
    }
}

/* ---------------------------------------------------------------- fully connected */

typedef struct {
    int32_t n_in, n_out;
    float *x, *w, *b, *y, *r;
} fc_ctx;

static double fc_loss(void *vc)
{
    fc_ctx *c = (fc_ctx *)vc;
    mdy_fully_connected_f32(c->n_in, c->n_out, c->x, c->w, c->b, c->y);
    return dot(c->y, c->r, (size_t)c->n_out);
}

static void test_fc(int32_t n_in, int32_t n_out)
{
    fc_ctx c;
    float *dx = fbuf((size_t)n_in), *sl = fbuf((size_t)n_in * n_out);
    double *fd = (double *)malloc((size_t)n_in * n_out * sizeof(double));
    uint16_t *sel = (uint16_t *)malloc((size_t)n_in * sizeof(uint16_t));
    int32_t *idx = (int32_t *)malloc((size_t)n_out * sizeof(int32_t));
    int32_t i, o;
    double e;
    c.n_in = n_in; c.n_out = n_out;
    c.x = fbuf((size_t)n_in); c.w = fbuf((size_t)n_in * n_out);
    c.b = fbuf((size_t)n_out); c.y = fbuf((size_t)n_out); c.r = fbuf((size_t)n_out);

    mdy_fully_connected_f32_igrad(n_in, n_out, c.w, c.r, dx, 0);
    finite_diff(fc_loss, &c, c.x, NULL, n_in, 0.5f, fd);
    e = rel_err(dx, fd, (size_t)n_in);
    CHECK(e <= 1e-3, "fc %dx%d igrad: rel err %g", (int)n_in, (int)n_out, e);

    for (i = 0; i < n_in; ++i)
        sel[i] = (uint16_t)i;
    for (i = 0; i < n_in * n_out; ++i)
        sl[i] = 0.0f;
    mdy_fully_connected_f32_wgrad(n_in, n_out, c.x, sel, n_in, c.r, sl);
    for (i = 0; i < n_in; ++i) {
        for (o = 0; o < n_out; ++o)
            idx[o] = o * n_in + i;
        finite_diff(fc_loss, &c, c.w, idx, n_out, 0.5f, fd + (size_t)i * n_out);
    }
    e = rel_err(sl, fd, (size_t)n_in * n_out);
    CHECK(e <= 1e-3, "fc %dx%d wgrad: rel err %g", (int)n_in, (int)n_out, e);
    mdy_fully_connected_f32_wgrad(n_in, n_out, NULL, NULL, 0, c.r, NULL);

    free(c.x); free(c.w); free(c.b); free(c.y); free(c.r);
    free(dx); free(sl); free(fd); free(sel); free(idx);
}

/* ---------------------------------------------------------------- pools */

typedef struct {
    mdy_pool_params p;
    int kind; /* 0 avg, 1 max */
    float *x, *y, *r;
} pool_ctx;

static size_t pool_in(const mdy_pool_params *p) { return (size_t)p->in_h * p->in_w * p->c; }
static size_t pool_out(const mdy_pool_params *p) { return (size_t)p->out_h * p->out_w * p->c; }

static double pool_loss(void *vc)
{
    pool_ctx *c = (pool_ctx *)vc;
    if (c->kind == 0)
        mdy_avgpool_nhwc_f32(&c->p, c->x, c->y);
    else
        mdy_maxpool_nhwc_f32(&c->p, c->x, c->y, NULL);
    return dot(c->y, c->r, pool_out(&c->p));
}

static mdy_pool_params make_pool(int32_t in_h, int32_t in_w, int32_t ch, int32_t k_h, int32_t k_w,
                                 int32_t s_h, int32_t s_w, int32_t t, int32_t l, int32_t b,
                                 int32_t r, int32_t cip)
{
    mdy_pool_params p;
    p.in_h = in_h; p.in_w = in_w; p.c = ch; p.k_h = k_h; p.k_w = k_w;
    p.stride_h = s_h; p.stride_w = s_w; p.pad_top = t; p.pad_left = l;
    p.out_h = (in_h + t + b - k_h) / s_h + 1;
    p.out_w = (in_w + l + r - k_w) / s_w + 1;
    p.count_include_pad = cip;
    return p;
}

static void test_pool_case(const char *name, mdy_pool_params p)
{
    pool_ctx c;
    const size_t nx = pool_in(&p), ny = pool_out(&p);
    float *dx = fbuf(nx);
    double *fd = (double *)malloc(nx * sizeof(double));
    uint8_t *mask;
    int32_t nb;
    size_t i;
    double e;
    c.p = p;
    c.x = fbuf(nx); c.y = fbuf(ny); c.r = fbuf(ny);
    /* distinct values 0.01 apart: a unique maximum per window that a step of
     * 0.002 cannot change */
    for (i = 0; i < nx; ++i)
        c.x[i] = (float)((i * 7919u) % nx) * 0.01f - 0.5f;

    for (c.kind = 0; c.kind < 2; ++c.kind) {
        if (c.kind == 0) {
            mdy_avgpool_nhwc_f32_igrad(&p, c.r, dx, 0);
        } else {
            nb = mdy_maxpool_nhwc_f32_mask_bytes(&p);
            mask = bbuf((size_t)nb);
            mdy_maxpool_nhwc_f32(&p, c.x, c.y, mask);
            mdy_maxpool_nhwc_f32_igrad(&p, mask, c.r, dx, 0);
            free(mask);
        }
        finite_diff(pool_loss, &c, c.x, NULL, (int32_t)nx, c.kind ? 0.002f : 0.5f, fd);
        e = rel_err(dx, fd, nx);
        CHECK(e <= 1e-3, "%s %s pool igrad: rel err %g", name, c.kind ? "max" : "avg", e);
    }
    free(c.x); free(c.y); free(c.r); free(dx); free(fd);
}

static void test_pools(void)
{
    test_pool_case("1x1 map, 3x3 window, pad all sides", make_pool(1, 1, 2, 3, 3, 1, 1, 1, 1, 1, 1, 0));
    test_pool_case("1x1 map, count_include_pad", make_pool(1, 1, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1));
    test_pool_case("3x3 s2 overlapping, pad", make_pool(7, 7, 3, 3, 3, 2, 2, 1, 1, 1, 1, 0));
    test_pool_case("3x3 s2x1 asym, include pad", make_pool(6, 5, 2, 3, 3, 2, 1, 0, 1, 2, 1, 1));
    test_pool_case("2x2 s2", make_pool(6, 6, 4, 2, 2, 2, 2, 0, 0, 0, 0, 0));
    test_pool_case("1x1 window s2x1", make_pool(4, 3, 2, 1, 1, 2, 1, 0, 0, 0, 0, 0));
}

/* ---------------------------------------------------------------- elementwise */

typedef struct {
    int kind;
    int32_t n;
    float *x, *y, *r, *s;
    int32_t hw, c;
} ew_ctx;

static double ew_loss(void *vc)
{
    ew_ctx *c = (ew_ctx *)vc;
    switch (c->kind) {
    case 0: mdy_clamp_f32(c->n, c->x, 0.0f, 6.0f, c->y, NULL); break;
    case 1: mdy_hardsigmoid_f32(c->n, c->x, 0.2f, 0.5f, c->y, NULL); break;
    case 2: mdy_hardswish_f32(c->n, c->x, c->y); break;
    case 3: mdy_mul_channel_nhwc_f32(c->hw, c->c, c->x, c->s, c->y); break;
    default: mdy_global_avgpool_nhwc_f32(c->hw, 1, c->c, c->x, c->y); return dot(c->y, c->r, (size_t)c->c);
    }
    return dot(c->y, c->r, (size_t)c->n);
}

static void test_elementwise(void)
{
    const int32_t hw = 5, ch = 3, n = hw * ch;
    ew_ctx c;
    float *dx = fbuf((size_t)n), *ds = fbuf((size_t)ch);
    double fd[15], fds[3];
    uint8_t *mask = bbuf((size_t)(n + 7) / 8);
    int32_t i, kind;
    double e;
    c.n = n; c.hw = hw; c.c = ch;
    c.x = fbuf((size_t)n); c.y = fbuf((size_t)n); c.r = fbuf((size_t)n); c.s = fbuf((size_t)ch);

    for (kind = 0; kind < 5; ++kind) {
        c.kind = kind;
        for (i = 0; i < n; ++i) { /* stay clear of every kink by more than the step */
            float v = frand() * 5.0f;
            if (fabsf(v) < 0.1f || fabsf(fabsf(v) - 2.5f) < 0.1f || fabsf(fabsf(v) - 3.0f) < 0.1f)
                v += 0.3f;
            c.x[i] = v;
        }
        switch (kind) {
        case 0:
            mdy_clamp_f32(n, c.x, 0.0f, 6.0f, c.y, mask);
            mdy_clamp_f32_igrad(n, mask, c.r, dx, 0);
            break;
        case 1:
            mdy_hardsigmoid_f32(n, c.x, 0.2f, 0.5f, c.y, mask);
            mdy_hardsigmoid_f32_igrad(n, mask, 0.2f, c.r, dx, 0);
            break;
        case 2:
            mdy_hardswish_f32_igrad(n, c.x, c.r, dx, 0);
            break;
        case 3:
            mdy_mul_channel_nhwc_f32_igrad_x(hw, ch, c.s, c.r, dx, 0);
            mdy_mul_channel_nhwc_f32_igrad_s(hw, ch, c.x, c.r, ds, 0);
            finite_diff(ew_loss, &c, c.s, NULL, ch, 0.5f, fds);
            e = rel_err(ds, fds, (size_t)ch);
            CHECK(e <= 1e-3, "mul_channel ds: rel err %g", e);
            break;
        default:
            mdy_global_avgpool_nhwc_f32_igrad(hw, 1, ch, c.r, dx, 0);
            break;
        }
        finite_diff(ew_loss, &c, c.x, NULL, n, 0.01f, fd);
        e = rel_err(dx, fd, (size_t)n);
        CHECK(e <= 1e-3, "elementwise kind %d igrad: rel err %g", kind, e);
    }

    /* in place, as the header allows */
    memcpy(c.y, c.x, (size_t)n * sizeof(float));
    mdy_clamp_f32(n, c.y, 0.0f, 6.0f, c.y, NULL);
    for (i = 0; i < n; ++i)
        CHECK(c.y[i] == (c.x[i] < 0.0f ? 0.0f : (c.x[i] > 6.0f ? 6.0f : c.x[i])), "clamp in place");

    free(c.x); free(c.y); free(c.r); free(c.s); free(dx); free(ds); free(mask);
}

/* masks of odd lengths are written to the last byte and no further */
static void test_mask_tail(void)
{
    int32_t n;
    for (n = 1; n <= 17; ++n) {
        float *x = fbuf((size_t)n), *y = fbuf((size_t)n);
        uint8_t *mask = bbuf((size_t)(n + 7) / 8);
        int32_t i;
        mdy_clamp_f32(n, x, 0.0f, 1.0f, y, mask);
        for (i = n; i < ((n + 7) / 8) * 8; ++i)
            CHECK(((mask[i >> 3] >> (i & 7)) & 1) == 0, "clamp mask tail bit %d of n=%d", (int)i, (int)n);
        for (i = 0; i < n; ++i)
            CHECK((((mask[i >> 3] >> (i & 7)) & 1) != 0) == (x[i] > 0.0f && x[i] < 1.0f),
                  "clamp mask bit %d of n=%d", (int)i, (int)n);
        free(x); free(y); free(mask);
    }
}

/* ---------------------------------------------------------------- softmax, SGD, concat */

typedef struct {
    int32_t n, label;
    float *x, *d;
} xent_ctx;

static double xent_loss(void *vc)
{
    xent_ctx *c = (xent_ctx *)vc;
    return (double)mdy_softmax_xent_f32(c->n, c->x, c->label, 1.0f, c->d);
}

static void test_softmax_sgd_concat(void)
{
    xent_ctx c;
    float *d = fbuf(10), *y = fbuf(10);
    double fd[10], sum = 0.0;
    int32_t i;
    double e;
    float loss;
    c.n = 10; c.label = 3; c.x = fbuf(10); c.d = fbuf(10);
    mdy_softmax_xent_f32(c.n, c.x, c.label, 1.0f, d);
    finite_diff(xent_loss, &c, c.x, NULL, c.n, 0.01f, fd);
    e = rel_err(d, fd, 10);
    CHECK(e <= 1e-3, "softmax xent dlogits: rel err %g", e);
    mdy_softmax_f32(10, c.x, y);
    for (i = 0; i < 10; ++i)
        sum += y[i];
    CHECK(fabs(sum - 1.0) < 1e-5, "softmax sums to %g", sum);
    loss = mdy_softmax_xent_f32(1, c.x, 0, 1.0f, d); /* one class: loss 0, gradient 0 */
    CHECK(fabsf(loss) < 1e-6f && fabsf(d[0]) < 1e-6f, "one-class xent");
    loss = mdy_softmax_xent_f32(10, c.x, 10, 1.0f, d); /* bad label: stays in bounds */
    CHECK(loss == 0.0f, "bad label loss");

    {
        float w[9], g[3] = {1.0f, -2.0f, 0.5f};
        float sq;
        for (i = 0; i < 9; ++i)
            w[i] = (float)i;
        sq = mdy_sgd_slice_f32(3, w, 3, g, 0.5f);
        CHECK(sq == 5.25f, "sgd norm %g", (double)sq);
        CHECK(w[0] == -0.5f && w[3] == 4.0f && w[6] == 5.75f && w[1] == 1.0f, "sgd update");
        CHECK(g[0] == 0.0f && g[1] == 0.0f && g[2] == 0.0f, "sgd zeroes the slice");
    }
    {
        float a[4] = {1, 2, 3, 4}, b[2] = {5, 6}, cat[6], da[4], db[2];
        const float expect[6] = {1, 2, 5, 3, 4, 6};
        mdy_concat_channels_nhwc_f32(2, 2, 1, a, b, cat);
        CHECK(memcmp(cat, expect, sizeof cat) == 0, "concat");
        mdy_concat_channels_nhwc_f32_igrad(2, 2, 1, 0, cat, da, 0);
        mdy_concat_channels_nhwc_f32_igrad(2, 2, 1, 1, cat, db, 0);
        CHECK(memcmp(da, a, sizeof da) == 0 && memcmp(db, b, sizeof db) == 0, "concat igrad");
        mdy_add_f32(4, a, a, da);
        mdy_add_f32_igrad(4, a, da, 1);
        CHECK(da[3] == 12.0f, "add / add igrad");
    }
    free(d); free(y); free(c.x); free(c.d);
}

int main(void)
{
    test_convs();
    test_wgrad_out_of_range_channel();
    test_fc(1, 1);
    test_fc(7, 3);
    test_pools();
    test_elementwise();
    test_mask_tail();
    test_softmax_sgd_concat();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
