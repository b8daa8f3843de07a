/* Depthwise conv 2D forward, int8, NHWC, Cortex-M7: the reference's
 * accumulators (bias + sum over in-range taps of (x - x_zero) w), bit-identical
 * to ../../reference/int8/.
 *
 * Channel multiplier 1, the MobileNet case: 4 channels at a time. One word
 * of x holds the 4 channels of a tap; SXTAB16 widens it, with the zero point
 * subtracted, into the lanes (c, c+2) and (c+1, c+3). The weights
 * [out_c][k_h][k_w] are channel-major, so the group's weights are packed once
 * into the same lane pairs, tap by tap, in a small array on the stack (at most
 * MAX_TAPS = 49 taps, up to 7x7, mcunet's widest: 8 bytes each, 392 bytes of
 * stack, against the boards' 2 KiB stack reserve); per tap and output position
 * that is one LDR of x, three widening instructions, two LDR of packed weights
 * and four 16 x 16 MACs (SMLABB / SMLATT, one lane each). Runs of 3x3 and 7x7
 * windows inside the map are unrolled. A 3x3 plane with a padding of 1 on
 * the left (stride 1 or 2, MobileNet's case) runs row by row with every
 * window unrolled, its border windows too (their in-range taps are one of
 * 3 x 3 constant shapes), and for the whole int8 range with the output zero
 * point folded into the rounding constant. Leftover channels, larger kernels
 * and multipliers above 1 run the reference loops. No scratch. */
#include "medyate.h"
#include "mdy_s8_dsp.h"

MDY_S8_NO_PRESCHEDULE

#define MAX_TAPS 49 /* up to 7x7 */

/* The reference loops for output channels [o0, o1). */
static void channels_plain(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                           const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y,
                           int32_t o0, int32_t o1)
{
    const int32_t in_c = p->in_c, out_c = p->out_c, m = out_c / in_c, x_zero = q->x_zero;
    const mdy_s8_out out = mdy_s8_out_of(q);
    int32_t oh, ow, o, kh, kw;
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            int8_t *yp = y + ((size_t)oh * p->out_w + ow) * out_c;
            for (o = o0; o < o1; ++o) {
                const int32_t c = o / m;
                int32_t acc = bias ? bias[o] : 0;
                for (kh = 0; kh < p->k_h; ++kh) {
                    const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                    if (ih < 0 || ih >= p->in_h)
                        continue;
                    for (kw = 0; kw < p->k_w; ++kw) {
                        const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                        if (iw < 0 || iw >= p->in_w)
                            continue;
                        acc += ((int32_t)x[((size_t)ih * p->in_w + iw) * in_c + c] - x_zero)
                               * (int32_t)w[((size_t)o * p->k_h + kh) * p->k_w + kw];
                    }
                }
                yp[o] = mdy_s8_output(out, mdy_s8_requant_channel(q->multiplier[o], q->shift[o]),
                                      acc);
            }
        }
    }
}

/* What the blocks of a 4-channel group need, read once (an int8 store may
 * alias any field of the parameter structs). */
typedef struct {
    const int8_t *x;                /* x + c */
    const mdy_s16x2 *wk;            /* [taps][2] packed weights */
    int32_t in_c, k_w, acc0[4];
    ptrdiff_t x_row;                /* in_w * in_c */
    mdy_s16x2 off;                  /* (-x_zero, -x_zero) */
    mdy_s8_requant r[4];
    mdy_s8_out out;
} group;

/* One output position whose in-range taps are rows kh0..kh1-1, columns
 * kw0..kw1-1; xoff: the offset in x of the window's (kh = 0, kw = 0) tap
 * (formed into a pointer for in-range taps only). k3: a 3-wide kernel whose
 * in-range columns are the constant [k3_kw0, k3_kw1) (unrolled), with rows
 * [kh0, kh1) (1: all 3 rows, constant too; 2: a border row range). full: the
 * clamp is the whole int8 range. */
MDY_AI void group_block(const int k3, const int k3_kw0, const int k3_kw1, const int full,
                        const group *G, ptrdiff_t xoff, int8_t *yp, int32_t kh0, int32_t kh1,
                        int32_t kw0, int32_t kw1)
{
    int32_t a0 = G->acc0[0], a1 = G->acc0[1], a2 = G->acc0[2], a3 = G->acc0[3];
    int32_t kh, kw;
    if (k3 == 1) {
        kh0 = 0;
        kh1 = 3;
    }
    if (k3) {
        kw0 = k3_kw0;
        kw1 = k3_kw1;
    }
    const int32_t k_w = k3 ? 3 : G->k_w, in_c = G->in_c;
    MDY_UNROLL(3)
    for (kh = kh0; kh < kh1; ++kh) {
        const mdy_s16x2 *wr = G->wk + 2 * (kh * k_w);
        const int8_t *xr = G->x + (xoff + (ptrdiff_t)kh * G->x_row + (ptrdiff_t)kw0 * in_c);
        MDY_UNROLL(3)
        for (kw = kw0; kw < kw1; ++kw) {
            const mdy_s16x2 we = wr[2 * kw], wo = wr[2 * kw + 1];
            const uint32_t v = mdy_read_s8x4(xr);
            const mdy_s16x2 xe = mdy_sxtab16(G->off, v);
            const mdy_s16x2 xo = mdy_sxtab16_ror8(G->off, v);
            a0 = mdy_smlabb(xe, we, a0);
            a2 = mdy_smlatt(xe, we, a2);
            a1 = mdy_smlabb(xo, wo, a1);
            a3 = mdy_smlatt(xo, wo, a3);
            xr += in_c;
        }
    }
    yp[0] = mdy_s8_output_k(full, G->out, G->r[0], a0);
    yp[1] = mdy_s8_output_k(full, G->out, G->r[1], a1);
    yp[2] = mdy_s8_output_k(full, G->out, G->r[2], a2);
    yp[3] = mdy_s8_output_k(full, G->out, G->r[3], a3);
}

/* One output position, any kernel, in-range taps rows kh0..kh1-1 and columns
 * kw0..kw1-1 (non-empty): pointers walk the window row by row and a row's
 * taps are counted down, so the inner loop holds only its pointers, the
 * count, the four sums and the zero point in registers (the indexed form of
 * group_block spills for every row, which dominates windows of a few taps
 * per row such as a 7x7 kernel's on the border). */
MDY_AI void group_rows(const int full, const group *G, ptrdiff_t xoff, int8_t *yp,
                       int32_t kh0, int32_t kh1, int32_t kw0, int32_t kw1)
{
    int32_t a0 = G->acc0[0], a1 = G->acc0[1], a2 = G->acc0[2], a3 = G->acc0[3];
    const int32_t in_c = G->in_c, n = kw1 - kw0, w_row = 2 * G->k_w;
    const ptrdiff_t x_row = G->x_row;
    const mdy_s16x2 off = G->off;
    const int8_t *xr = G->x + (xoff + (ptrdiff_t)kh0 * x_row + (ptrdiff_t)kw0 * in_c);
    const mdy_s16x2 *wr = G->wk + 2 * (kh0 * G->k_w + kw0);
    int32_t r;
    for (r = kh1 - kh0; r > 0; --r, xr += x_row, wr += w_row) {
        const int8_t *xp = xr;
        const mdy_s16x2 *wp = wr;
        int32_t t;
        for (t = n; t > 0; --t, xp += in_c, wp += 2) {
            const mdy_s16x2 we = wp[0], wo = wp[1];
            const uint32_t v = mdy_read_s8x4(xp);
            const mdy_s16x2 xe = mdy_sxtab16(off, v);
            const mdy_s16x2 xo = mdy_sxtab16_ror8(off, v);
            a0 = mdy_smlabb(xe, we, a0);
            a2 = mdy_smlatt(xe, we, a2);
            a1 = mdy_smlabb(xo, wo, a1);
            a3 = mdy_smlatt(xo, wo, a3);
        }
    }
    yp[0] = mdy_s8_output_k(full, G->out, G->r[0], a0);
    yp[1] = mdy_s8_output_k(full, G->out, G->r[1], a1);
    yp[2] = mdy_s8_output_k(full, G->out, G->r[2], a2);
    yp[3] = mdy_s8_output_k(full, G->out, G->r[3], a3);
}

/* A window partly in the padding; 3x3 ones with the in-range columns of a
 * padding of 1 (all, all but the first, all but the last) unrolled. */
MDY_NOINLINE static void group_1(const group *G, ptrdiff_t xoff, int8_t *yp, int32_t kh0,
                                 int32_t kh1, int32_t kw0, int32_t kw1, int k3)
{
    if (!mdy_s8_out_full(G->out))
        group_rows(0, G, xoff, yp, kh0, kh1, kw0, kw1);
    else if (k3 && kw0 == 0 && kw1 == 3)
        group_block(2, 0, 3, 1, G, xoff, yp, kh0, kh1, kw0, kw1);
    else if (k3 && kw0 == 1 && kw1 == 3)
        group_block(2, 1, 3, 1, G, xoff, yp, kh0, kh1, kw0, kw1);
    else if (k3 && kw0 == 0 && kw1 == 2)
        group_block(2, 0, 2, 1, G, xoff, yp, kh0, kh1, kw0, kw1);
    else
        group_rows(1, G, xoff, yp, kh0, kh1, kw0, kw1);
}

/* n positions along an output row, each a 3x3 window inside the map, the
 * next one x_step further in x and out_c further in y. */
MDY_AI void run_3x3(const int full, const group *G, ptrdiff_t xoff, int8_t *yp, int32_t n,
                    ptrdiff_t x_step, int32_t out_c)
{
    const group g = *G; /* a local copy: no int8 store can alias it */
    G = &g;
    for (; n > 0; --n, xoff += x_step, yp += out_c)
        group_block(1, 0, 3, full, G, xoff, yp, 0, 3, 0, 3);
}

MDY_NOINLINE static void run_3x3_full(const group *G, ptrdiff_t xoff, int8_t *yp, int32_t n,
                                      ptrdiff_t x_step, int32_t out_c)
{
    run_3x3(1, G, xoff, yp, n, x_step, out_c);
}

MDY_NOINLINE static void run_3x3_clamp(const group *G, ptrdiff_t xoff, int8_t *yp, int32_t n,
                                       ptrdiff_t x_step, int32_t out_c)
{
    run_3x3(0, G, xoff, yp, n, x_step, out_c);
}

/* One 7x7 window inside the map: every tap, constant offsets. */
MDY_AI void block_7x7(const int full, const group *G, ptrdiff_t xoff, int8_t *yp)
{
    int32_t a0 = G->acc0[0], a1 = G->acc0[1], a2 = G->acc0[2], a3 = G->acc0[3];
    int32_t kh, kw;
    const int32_t in_c = G->in_c;
    const int8_t *xr0 = G->x + xoff;
    for (kh = 0; kh < 7; ++kh) {
        const mdy_s16x2 *wr = G->wk + 2 * (kh * 7);
        const int8_t *xr = xr0 + (ptrdiff_t)kh * G->x_row;
        MDY_UNROLL(7)
        for (kw = 0; kw < 7; ++kw) {
            const mdy_s16x2 we = wr[2 * kw], wo = wr[2 * kw + 1];
            const uint32_t v = mdy_read_s8x4(xr);
            const mdy_s16x2 xe = mdy_sxtab16(G->off, v);
            const mdy_s16x2 xo = mdy_sxtab16_ror8(G->off, v);
            a0 = mdy_smlabb(xe, we, a0);
            a2 = mdy_smlatt(xe, we, a2);
            a1 = mdy_smlabb(xo, wo, a1);
            a3 = mdy_smlatt(xo, wo, a3);
            xr += in_c;
        }
    }
    yp[0] = mdy_s8_output_k(full, G->out, G->r[0], a0);
    yp[1] = mdy_s8_output_k(full, G->out, G->r[1], a1);
    yp[2] = mdy_s8_output_k(full, G->out, G->r[2], a2);
    yp[3] = mdy_s8_output_k(full, G->out, G->r[3], a3);
}

MDY_AI void run_7x7(const int full, const group *G, ptrdiff_t xoff, int8_t *yp, int32_t n,
                    ptrdiff_t x_step, int32_t out_c)
{
    const group g = *G; /* a local copy: no int8 store can alias it */
    G = &g;
    for (; n > 0; --n, xoff += x_step, yp += out_c)
        block_7x7(full, G, xoff, yp);
}

MDY_NOINLINE static void run_7x7_full(const group *G, ptrdiff_t xoff, int8_t *yp, int32_t n,
                                      ptrdiff_t x_step, int32_t out_c)
{
    run_7x7(1, G, xoff, yp, n, x_step, out_c);
}

MDY_NOINLINE static void run_7x7_clamp(const group *G, ptrdiff_t xoff, int8_t *yp, int32_t n,
                                       ptrdiff_t x_step, int32_t out_c)
{
    run_7x7(0, G, xoff, yp, n, x_step, out_c);
}

MDY_NOINLINE static void run_inside(const group *G, int32_t k, int full, ptrdiff_t xoff,
                                    int8_t *yp, int32_t n, ptrdiff_t x_step, int32_t out_c)
{
    if (k == 7)
        (full ? run_7x7_full : run_7x7_clamp)(G, xoff, yp, n, x_step, out_c);
    else
        (full ? run_3x3_full : run_3x3_clamp)(G, xoff, yp, n, x_step, out_c);
}

static void tap_range(int32_t i0, int32_t k, int32_t in, int32_t *k0, int32_t *k1)
{
    *k0 = i0 < 0 ? -i0 : 0;
    *k1 = in - i0 < k ? in - i0 : k;
}

/* The columns of a 3x3 plane with a padding of 1 on the left, stride 1 or 2:
 * a left border window (its taps in columns 1..2), n windows inside the map,
 * and at most one right border window (columns 0..1). 0 when the row has
 * another shape (the per-window loop takes it). */
typedef struct {
    int32_t n, right;
} cols_3x3;

static int cols_of_3x3(const mdy_conv_params *p, cols_3x3 *cc)
{
    int32_t last, kw0, kw1;
    if (p->k_h != 3 || p->k_w != 3 || p->pad_left != 1 || p->stride_w > 2 || p->in_w < 2)
        return 0;
    last = (p->in_w - 3 + 1) / p->stride_w; /* the last output column inside */
    cc->n = (last < p->out_w - 1 ? last : p->out_w - 1);
    if (cc->n < 0)
        cc->n = 0;
    cc->right = p->out_w - 1 - cc->n;
    if (cc->right == 0)
        return 1;
    if (cc->right != 1)
        return 0;
    tap_range((p->out_w - 1) * p->stride_w - 1, 3, p->in_w, &kw0, &kw1);
    return kw0 == 0 && kw1 == 2;
}

/* One output row of a 3x3 plane whose in-range kernel rows are [KH0, KH1)
 * for every window: left border, inside, right border, each window unrolled
 * with constant taps. */
MDY_AI void row_3x3(const int KH0, const int KH1, const int full, const group *G,
                    ptrdiff_t xoff, int8_t *yp, const cols_3x3 *cc, ptrdiff_t x_step,
                    int32_t out_c)
{
    int32_t n;
    group_block(2, 1, 3, full, G, xoff, yp, KH0, KH1, 1, 3);
    for (n = cc->n; n > 0; --n) {
        xoff += x_step;
        yp += out_c;
        group_block(2, 0, 3, full, G, xoff, yp, KH0, KH1, 0, 3);
    }
    if (cc->right)
        group_block(2, 0, 2, full, G, xoff + x_step, yp + out_c, KH0, KH1, 0, 2);
}

/* A group's whole 3x3 plane (cols_of_3x3 holds): rows with all three kernel
 * rows in range, or the top or bottom one outside, go through row_3x3; other
 * rows (maps of one or two rows) window by window. full 2: the whole int8
 * range with the output zero point folded into k_high. */
MDY_AI void plane_3x3(const int full, const group *G0, const mdy_conv_params *p, int8_t *y,
                      const cols_3x3 *cc0)
{
    group g = *G0; /* local copies: no int8 store can alias them */
    const cols_3x3 cc = *cc0;
    const group *G = &g;
    const int32_t in_c = p->in_c, in_w = p->in_w, in_h = p->in_h, out_c = p->out_c;
    const int32_t out_h = p->out_h, out_w = p->out_w, stride_h = p->stride_h;
    const int32_t pad_top = p->pad_top;
    const ptrdiff_t x_step = (ptrdiff_t)p->stride_w * in_c;
    int32_t oh, ow, j;
    if (full == 2)
        for (j = 0; j < 4; ++j)
            g.r[j] = mdy_s8_fold_zero(g.r[j], g.out.y_zero);
    for (oh = 0; oh < out_h; ++oh) {
        const int32_t ih0 = oh * stride_h - pad_top;
        const ptrdiff_t xoff = ((ptrdiff_t)ih0 * in_w - 1) * in_c;
        int8_t *const yp = y + (size_t)oh * out_w * out_c;
        int32_t kh0, kh1;
        tap_range(ih0, 3, in_h, &kh0, &kh1);
        if (kh0 == 0 && kh1 == 3)
            row_3x3(0, 3, full, G, xoff, yp, &cc, x_step, out_c);
        else if (kh0 == 1 && kh1 == 3)
            row_3x3(1, 3, full, G, xoff, yp, &cc, x_step, out_c);
        else if (kh0 == 0 && kh1 == 2)
            row_3x3(0, 2, full, G, xoff, yp, &cc, x_step, out_c);
        else
            for (ow = 0; ow < out_w; ++ow) {
                int32_t kw0, kw1;
                tap_range(ow * p->stride_w - 1, 3, in_w, &kw0, &kw1);
                group_1(G0, xoff + ow * x_step, yp + ow * out_c, kh0, kh1, kw0, kw1, 1);
            }
    }
}

MDY_NOINLINE static void plane_3x3_full(const group *G, const mdy_conv_params *p, int8_t *y,
                                        const cols_3x3 *cc)
{
    plane_3x3(2, G, p, y, cc);
}

MDY_NOINLINE static void plane_3x3_clamp(const group *G, const mdy_conv_params *p, int8_t *y,
                                         const cols_3x3 *cc)
{
    plane_3x3(0, G, p, y, cc);
}

/* Channels c..c+3's group: the packed weights into wk, the constants into G. */
MDY_AI void group_setup(group *G, mdy_s16x2 (*wk)[2], const mdy_conv_params *p,
                        const mdy_s8_conv_quant *q, const int8_t *x, const int8_t *w,
                        const int32_t *bias, int32_t c)
{
    const int32_t taps = p->k_h * p->k_w;
    int32_t t, j;
    for (t = 0; t < taps; ++t) {
        wk[t][0] = mdy_pack16(w[(size_t)c * taps + t], w[(size_t)(c + 2) * taps + t]);
        wk[t][1] = mdy_pack16(w[(size_t)(c + 1) * taps + t], w[(size_t)(c + 3) * taps + t]);
    }
    G->x = x + c;
    G->wk = wk[0];
    G->in_c = p->in_c;
    G->k_w = p->k_w;
    G->x_row = (ptrdiff_t)p->in_w * p->in_c;
    G->off = mdy_s16x2_dup(-q->x_zero);
    G->out = mdy_s8_out_of(q);
    for (j = 0; j < 4; ++j) {
        G->acc0[j] = bias ? bias[c + j] : 0;
        G->r[j] = mdy_s8_requant_channel(q->multiplier[c + j], q->shift[c + j]);
    }
}

/* Channels c..c+3 of a 3x3 plane (cols_of_3x3 holds): a frame of its own
 * for the 9 taps' packed weights, so the plane's call chain does not carry
 * channels_4's 49. */
MDY_NOINLINE static void plane_group(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                                     const int8_t *x, const int8_t *w, const int32_t *bias,
                                     int8_t *y, int32_t c, const cols_3x3 *cc)
{
    mdy_s16x2 wk[9][2];
    group G;
    int fold;
    int32_t j;
    group_setup(&G, wk, p, q, x, w, bias, c);
    fold = mdy_s8_out_full(G.out);
    for (j = 0; j < 4; ++j)
        fold = fold && mdy_s8_fold_zero_ok(G.r[j]);
    /* direct calls: a call through a pointer would make the static stack
     * bound follow every address-taken function */
    if (fold)
        plane_3x3_full(&G, p, y + c, cc);
    else
        plane_3x3_clamp(&G, p, y + c, cc);
}

/* Channels c..c+3 (multiplier 1, k_h * k_w <= MAX_TAPS). */
static void channels_4(const mdy_conv_params *p, const mdy_s8_conv_quant *q, const int8_t *x,
                       const int8_t *w, const int32_t *bias, int8_t *y, int32_t c)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, in_h = p->in_h, in_w = p->in_w;
    const int32_t out_h = p->out_h, out_w = p->out_w, stride_h = p->stride_h;
    const int32_t stride_w = p->stride_w, pad_top = p->pad_top, pad_left = p->pad_left;
    mdy_s16x2 wk[MAX_TAPS][2]; /* (w[c][t], w[c+2][t]), (w[c+1][t], w[c+3][t]) */
    group G;
    /* the square kernels with unrolled runs of windows inside the map */
    const int32_t k_run = (k_h == 3 || k_h == 7) && k_w == k_h ? k_h : -1;
    int32_t oh, ow;
    int full;
    group_setup(&G, wk, p, q, x, w, bias, c);
    full = mdy_s8_out_full(G.out);
    for (oh = 0; oh < out_h; ++oh) {
        const int32_t ih0 = oh * stride_h - pad_top;
        int32_t kh0, kh1;
        tap_range(ih0, k_h, in_h, &kh0, &kh1);
        for (ow = 0; ow < out_w;) {
            const int32_t iw0 = ow * stride_w - pad_left;
            const ptrdiff_t xoff = ((ptrdiff_t)ih0 * in_w + iw0) * in_c;
            int8_t *const yp = y + ((size_t)oh * out_w + ow) * out_c + c;
            int32_t kw0, kw1;
            tap_range(iw0, k_w, in_w, &kw0, &kw1);
            if (kh0 == 0 && kh1 == k_run && kw0 == 0 && kw1 == k_run) {
                /* the run of windows inside the map: up to the last output
                 * column whose window ends inside the row */
                const int32_t last = (in_w - k_run + pad_left) / stride_w;
                const int32_t n = (last < out_w - 1 ? last : out_w - 1) - ow + 1;
                run_inside(&G, k_run, full, xoff, yp, n, (ptrdiff_t)stride_w * in_c, out_c);
                ow += n;
            } else {
                group_1(&G, xoff, yp, kh0, kh1, kw0, kw1, k_h == 3 && k_w == 3);
                ++ow;
            }
        }
    }
}

/* Whether channels c..c+3 all requantize in the common case (mdy_s8_dsp.h). */
static int common_requant_4(const mdy_s8_conv_quant *q, int32_t c)
{
    int32_t j;
    for (j = 0; j < 4; ++j)
        if (mdy_s8_requant_channel(q->multiplier[c + j], q->shift[c + j]).general)
            return 0;
    return 1;
}

void mdy_depthwise_conv2d_nhwc_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                                  const int8_t *x, const int8_t *w, const int32_t *bias,
                                  int8_t *y)
{
    int32_t c = 0;
    if (p->out_c == p->in_c && p->k_h * p->k_w <= MAX_TAPS) {
        cols_3x3 cols;
        const cols_3x3 *cc = cols_of_3x3(p, &cols) ? &cols : NULL;
        for (; c + 4 <= p->in_c; c += 4) {
            if (!common_requant_4(q, c))
                channels_plain(p, q, x, w, bias, y, c, c + 4);
            else if (cc)
                plane_group(p, q, x, w, bias, y, c, cc);
            else
                channels_4(p, q, x, w, bias, y, c);
        }
    }
    if (c < p->out_c)
        channels_plain(p, q, x, w, bias, y, c, p->out_c);
}

int32_t mdy_depthwise_conv2d_nhwc_s8_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* the packed weights live on the stack (MAX_TAPS * 8 bytes): no scratch */
    return 0;
}
