/* Depthwise conv 2D sparse weight gradient: 3x3 kernels in registers.
 *
 * For output channel o of selected input channel c = sel[k], tap (kh, kw)
 * sums dy[oh][ow][o] * x_c[ih][iw] over the output positions whose tap reads
 * inside the map, in raster order, and adds the sum to the slice, as the
 * reference does (bit-identical). For 3x3 kernels the nine sums stay in
 * registers while the output positions are walked once in raster order
 * (each position adds to the taps it can see, so every tap's terms keep
 * their order); inside a row whose taps are all valid, NP positions are done
 * as a sliding window: each column of the 3-row input window is loaded once
 * for all the positions that read it (the map is planar, so the columns of
 * a row are adjacent). Other kernel sizes take the reference's loops. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

/* NP positions of one output row whose windows lie inside the map across
 * (all three kw) and see kernel rows [KH0, KH1); horizontal stride S: r[kh]
 * is input row kh of the first position's window; dyp its dy element. */
MDY_AI void slide(const int NP, const int S, const int KH0, const int KH1, float acc[3][3],
                  const float *const r[3], const float *dyp, int32_t out_c)
{
    float d[6];
    int j, t, kh;
MDY_UNROLL(6)
    for (j = 0; j < NP; ++j)
        d[j] = dyp[(size_t)j * out_c];
MDY_UNROLL(16)
    for (t = 0; t < (NP - 1) * S + 3; ++t) {
        float xv[3];
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            xv[kh] = r[kh][t];
MDY_UNROLL(6)
        for (j = 0; j < NP; ++j) {
            const int kw = t - j * S;
            if (kw >= 0 && kw < 3) {
MDY_UNROLL(3)
                for (kh = KH0; kh < KH1; ++kh)
                    acc[kh][kw] = fmaf(d[j], xv[kh], acc[kh][kw]);
            }
        }
    }
}

/* One output position: taps [kh0, kh1) x [kw0, kw1) valid; x at tap (0, 0)
 * is xm[ih * in_w + iw] with ih, iw possibly outside (only valid taps read). */
MDY_AI void one_position(float *sums, const float *xm, int32_t in_w, int32_t ih,
                         int32_t iw, int32_t kh0, int32_t kh1, int32_t kw0, int32_t kw1,
                         float d)
{
    int kh, kw;
MDY_UNROLL(3)
    for (kh = 0; kh < 3; ++kh) {
        if (kh < kh0 || kh >= kh1)
            continue;
MDY_UNROLL(3)
        for (kw = 0; kw < 3; ++kw) {
            if (kw < kw0 || kw >= kw1)
                continue;
            sums[kh * 3 + kw] = fmaf(d, xm[(size_t)(ih + kh) * in_w + (iw + kw)],
                                     sums[kh * 3 + kw]);
        }
    }
}

/* n positions of an interior run (see slide), the nine sums loaded from
 * and stored back to sums[] once per run. */
MDY_AI void run(const int S, const int KH0, const int KH1, float *sums,
                const float *r0, const float *r1, const float *r2,
                const float *dyp, int32_t out_c, int32_t n)
{
    float acc[3][3];
    const float *r[3];
    int kh, kw;
    r[0] = r0, r[1] = r1, r[2] = r2;
MDY_UNROLL(3)
    for (kh = KH0; kh < KH1; ++kh)
MDY_UNROLL(3)
        for (kw = 0; kw < 3; ++kw)
            acc[kh][kw] = sums[kh * 3 + kw];
    for (; n >= 4; n -= 4, dyp += 4 * out_c) {
        slide(4, S, KH0, KH1, acc, r, dyp, out_c);
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            r[kh] += 4 * S;
    }
    for (; n > 0; --n, dyp += out_c) {
        slide(1, S, KH0, KH1, acc, r, dyp, out_c);
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            r[kh] += S;
    }
MDY_UNROLL(3)
    for (kh = KH0; kh < KH1; ++kh)
MDY_UNROLL(3)
        for (kw = 0; kw < 3; ++kw)
            sums[kh * 3 + kw] = acc[kh][kw];
}

/* One out-of-line copy per (stride, kernel rows): each compiles to a simple
 * loop with the sums in registers. */
#define MDY_RUN(name, S, KH0, KH1)                                                   \
    static MDY_NOINLINE void name(float *sums, const float *r0,         \
                                               const float *r1, const float *r2,     \
                                               const float *dyp, int32_t out_c,      \
                                               int32_t n)                            \
    {                                                                                \
        run(S, KH0, KH1, sums, r0, r1, r2, dyp, out_c, n);                           \
    }
MDY_RUN(run_s1_all, 1, 0, 3)
MDY_RUN(run_s1_low, 1, 1, 3)
MDY_RUN(run_s1_high, 1, 0, 2)
MDY_RUN(run_s2_all, 2, 0, 3)
MDY_RUN(run_s2_low, 2, 1, 3)
MDY_RUN(run_s2_high, 2, 0, 2)

static void tap_range(int32_t o, int32_t stride, int32_t pad, int32_t in,
                      int32_t *k0, int32_t *k1)
{
    const int32_t start = o * stride - pad;
    *k0 = start < 0 ? -start : 0;
    *k1 = in - start < 3 ? in - start : 3;
    if (*k1 < *k0)
        *k1 = *k0;
}

/* The fast path of a channel: stride S in {1, 2}, left padding 0 or 1, so that
 * at most the first output column (tap columns 1..2) and the last ones (tap
 * columns 0..KW1-1) leave the map across. The nine sums stay in registers for
 * the whole channel; each row is its left border position, its interior as
 * sliding windows of 6, 4, 2 and 1 positions, and its right border positions,
 * in raster order. A tap's sum takes its terms in raster order whatever the
 * interleaving with the other taps, so the result is the reference's. */

/* One position whose taps [KH0, KH1) x [KW0, KW1) are inside the map: the
 * input of tap (kh, kw) is r[kh][col + kw]. */
MDY_AI void border(const int KH0, const int KH1, const int KW0, const int KW1, float acc[3][3],
                   const float *const r[3], int32_t col, float d)
{
    int kh, kw;
MDY_UNROLL(3)
    for (kh = KH0; kh < KH1; ++kh)
MDY_UNROLL(3)
        for (kw = KW0; kw < KW1; ++kw)
            acc[kh][kw] = fmaf(d, r[kh][col + kw], acc[kh][kw]);
}

/* The nine sums between memory (sums[kh * 3 + kw]) and registers (acc). */
MDY_AI void sums_to_acc(const float *sums, float acc[3][3])
{
    int kh, kw;
MDY_UNROLL(3)
    for (kh = 0; kh < 3; ++kh)
MDY_UNROLL(3)
        for (kw = 0; kw < 3; ++kw)
            acc[kh][kw] = sums[kh * 3 + kw];
}

MDY_AI void acc_to_sums(float acc[3][3], float *sums)
{
    int kh, kw;
MDY_UNROLL(3)
    for (kh = 0; kh < 3; ++kh)
MDY_UNROLL(3)
        for (kw = 0; kw < 3; ++kw)
            sums[kh * 3 + kw] = acc[kh][kw];
}

/* One output row seeing kernel rows [KH0, KH1): r[kh] is the input row ih + kh
 * (column 0), dyr the row's first dy element, [lo, hi) its interior. */
MDY_AI void fast_row(const int S, const int KH0, const int KH1, float acc[3][3],
                     const float *const r[3], const float *dyr, int32_t out_c,
                     int32_t out_w, int32_t lo, int32_t hi, int32_t pad, int32_t in_w)
{
    const float *w[3];
    const float *dyp = dyr + (size_t)lo * out_c;
    int32_t ow, n = hi - lo;
    int kh;
    if (lo == 1) /* pad 1: column -1 is outside */
        border(KH0, KH1, 1, 3, acc, r, -1, dyr[0]);
MDY_UNROLL(3)
    for (kh = KH0; kh < KH1; ++kh)
        w[kh] = r[kh] + lo * S - pad;
    for (; n >= 6; n -= 6, dyp += 6 * out_c) {
        slide(6, S, KH0, KH1, acc, w, dyp, out_c);
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            w[kh] += 6 * S;
    }
    if (n >= 4) {
        slide(4, S, KH0, KH1, acc, w, dyp, out_c);
        n -= 4, dyp += 4 * out_c;
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            w[kh] += 4 * S;
    }
    if (n >= 2) {
        slide(2, S, KH0, KH1, acc, w, dyp, out_c);
        n -= 2, dyp += 2 * out_c;
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            w[kh] += 2 * S;
    }
    if (n == 1)
        slide(1, S, KH0, KH1, acc, w, dyp, out_c);
    for (ow = hi; ow < out_w; ++ow) {
        const int32_t col = ow * S - pad;
        const float d = dyr[(size_t)ow * out_c];
        if (in_w - col == 2)
            border(KH0, KH1, 0, 2, acc, r, col, d);
        else if (in_w - col == 1)
            border(KH0, KH1, 0, 1, acc, r, col, d);
    }
}

/* A row outside the middle rows, its nine sums in memory (one copy of the
 * code per stride, out of line: these are a map's top and bottom rows): its
 * kernel rows from tap_range, the fast row where they are all three, the last
 * two or the first two, otherwise one position at a time with run-time tap
 * ranges. */
MDY_AI void edge_row(const int S, const mdy_conv_params *p, float *sums, const float *xm,
                     const float *dy, int32_t o, int32_t oh, int32_t lo, int32_t hi)
{
    float acc[3][3];
    const int32_t out_c = p->out_c, in_w = p->in_w, pad = p->pad_left;
    const int32_t ih = oh * p->stride_h - p->pad_top;
    const float *dyr = dy + (size_t)oh * p->out_w * out_c + o;
    const float *r[3];
    int32_t kh0, kh1, ow;
    int kh;
    tap_range(oh, p->stride_h, p->pad_top, p->in_h, &kh0, &kh1);
    for (kh = 0; kh < 3; ++kh) /* rows outside the map are never read */
        r[kh] = kh >= kh0 && kh < kh1 ? xm + (size_t)(ih + kh) * in_w : xm;
    if (!(kh0 == 0 && (kh1 == 3 || kh1 == 2)) && !(kh0 == 1 && kh1 == 3)) {
        for (ow = 0; ow < p->out_w; ++ow) {
            int32_t kw0, kw1;
            tap_range(ow, S, pad, in_w, &kw0, &kw1);
            one_position(sums, xm, in_w, ih, ow * S - pad, kh0, kh1, kw0, kw1,
                         dyr[(size_t)ow * out_c]);
        }
        return;
    }
    sums_to_acc(sums, acc);
    if (kh0 == 0 && kh1 == 3) {
        fast_row(S, 0, 3, acc, r, dyr, out_c, p->out_w, lo, hi, pad, in_w);
    } else if (kh0 == 1 && kh1 == 3) {
        fast_row(S, 1, 3, acc, r, dyr, out_c, p->out_w, lo, hi, pad, in_w);
    } else {
        fast_row(S, 0, 2, acc, r, dyr, out_c, p->out_w, lo, hi, pad, in_w);
    }
    acc_to_sums(acc, sums);
}

/* One out-of-line copy per stride (1, 2), as MDY_RUN above. */
#define MDY_EDGE_ROW(name, S)                                                           \
    static MDY_NOINLINE void name(const mdy_conv_params *p, float *sums, const float *xm, \
                                  const float *dy, int32_t o, int32_t oh, int32_t lo,   \
                                  int32_t hi)                                           \
    {                                                                                   \
        edge_row(S, p, sums, xm, dy, o, oh, lo, hi);                                    \
    }
MDY_EDGE_ROW(edge_row_s1, 1)
MDY_EDGE_ROW(edge_row_s2, 2)

MDY_AI void edge(const int S, const mdy_conv_params *p, float *sums, const float *xm,
                 const float *dy, int32_t o, int32_t oh, int32_t lo, int32_t hi)
{
    if (S == 1)
        edge_row_s1(p, sums, xm, dy, o, oh, lo, hi);
    else
        edge_row_s2(p, sums, xm, dy, o, oh, lo, hi);
}

/* The whole channel (see above): the rows before the middle ones, the middle
 * rows (all three kernel rows inside the map) with their row pointers
 * advanced by constants, the rows after. */
MDY_AI void fast_channel(const int S, const mdy_conv_params *p, const float *xm,
                         const float *dy, int32_t o, int32_t lo, int32_t hi, float *dw)
{
    const int32_t out_c = p->out_c, in_w = p->in_w, pad = p->pad_left, out_w = p->out_w;
    const int32_t sh = p->stride_h, pt = p->pad_top;
    /* middle rows [m0, m1): oh*sh - pt >= 0 and oh*sh - pt + 3 <= in_h */
    int32_t m0 = (pt + sh - 1) / sh;
    int32_t m1 = p->in_h - 3 + pt < 0 ? 0 : (p->in_h - 3 + pt) / sh + 1;
    float sums[9], acc[3][3];
    int32_t oh;
    int kh;
    if (m1 > p->out_h)
        m1 = p->out_h;
    if (m0 > m1)
        m0 = m1;
    for (kh = 0; kh < 9; ++kh)
        sums[kh] = 0.0f;
    for (oh = 0; oh < m0; ++oh)
        edge(S, p, sums, xm, dy, o, oh, lo, hi);
    sums_to_acc(sums, acc);
    if (m1 > m0) {
        const size_t rs = (size_t)sh * in_w, ds = (size_t)out_w * out_c;
        const float *r[3];
        const float *dyr = dy + (size_t)m0 * ds + o;
        int32_t n = m1 - m0;
        r[0] = xm + (size_t)(m0 * sh - pt) * in_w;
        r[1] = r[0] + in_w;
        r[2] = r[1] + in_w;
        for (; n > 0; --n, dyr += ds) {
            fast_row(S, 0, 3, acc, r, dyr, out_c, out_w, lo, hi, pad, in_w);
            r[0] += rs, r[1] += rs, r[2] += rs;
        }
    }
    acc_to_sums(acc, sums);
    for (oh = m1; oh < p->out_h; ++oh)
        edge(S, p, sums, xm, dy, o, oh, lo, hi);
    for (kh = 0; kh < 9; ++kh)
        dw[kh] += sums[kh];
}

#define MDY_FAST_CHANNEL(name, S)                                                       \
    static MDY_NOINLINE void name(const mdy_conv_params *p, const float *xm,            \
                                  const float *dy, int32_t o, int32_t lo, int32_t hi,   \
                                  float *dw)                                            \
    {                                                                                   \
        fast_channel(S, p, xm, dy, o, lo, hi, dw);                                      \
    }
MDY_FAST_CHANNEL(fast_channel_s1, 1)
MDY_FAST_CHANNEL(fast_channel_s2, 2)

/* Whether every output column from hi on reads tap columns 0..1 or 0 only
 * (its window leaves the map by one or two columns, never on both sides). */
static int right_border_fits(const mdy_conv_params *p, int32_t hi)
{
    int32_t ow;
    for (ow = hi; ow < p->out_w; ++ow) {
        const int32_t left = p->in_w - (ow * p->stride_w - p->pad_left);
        if (left != 1 && left != 2)
            return 0;
    }
    return 1;
}

static void channel_3x3(const mdy_conv_params *p, const float *xm, const float *dy,
                        int32_t o, float *dw)
{
    const int32_t out_c = p->out_c, in_w = p->in_w, S = p->stride_w;
    /* the outputs whose window lies inside the map across: [lo, hi) */
    int32_t lo = (p->pad_left + S - 1) / S;
    int32_t hi = in_w - 3 + p->pad_left < 0 ? 0 : (in_w - 3 + p->pad_left) / S + 1;
    float sums[9];
    int32_t oh, ow;
    int t;
    if (hi > p->out_w)
        hi = p->out_w;
    if (lo > hi || (S != 1 && S != 2))
        lo = hi = p->out_w; /* no sliding run: every position on its own */
    else if (p->pad_left <= 1 && hi > lo && right_border_fits(p, hi)) {
        if (S == 1)
            fast_channel_s1(p, xm, dy, o, lo, hi, dw);
        else
            fast_channel_s2(p, xm, dy, o, lo, hi, dw);
        return;
    }
    for (t = 0; t < 9; ++t)
        sums[t] = 0.0f;
    for (oh = 0; oh < p->out_h; ++oh) {
        const int32_t ih = oh * p->stride_h - p->pad_top;
        const float *dyr = dy + (size_t)oh * p->out_w * out_c + o;
        const int32_t iw_lo = lo * S - p->pad_left;
        int32_t kh0, kh1, kw0, kw1;
        const int slide = hi > lo;
        tap_range(oh, p->stride_h, p->pad_top, p->in_h, &kh0, &kh1);
        /* raster order: left border, the run, right border */
        for (ow = 0; ow < (slide ? lo : p->out_w); ++ow) {
            tap_range(ow, S, p->pad_left, in_w, &kw0, &kw1);
            one_position(sums, xm, in_w, ih, ow * S - p->pad_left, kh0, kh1, kw0, kw1,
                         dyr[(size_t)ow * out_c]);
        }
        if (!slide)
            continue;
        if (kh1 - kh0 >= 2) {
            /* all kernel rows, or the top or bottom two */
            const float *r[3] = {xm, xm, xm};
            const float *dyp = dyr + (size_t)lo * out_c;
            for (t = (int)kh0; t < (int)kh1; ++t)
                r[t] = xm + (size_t)(ih + t) * in_w + iw_lo;
            if (kh1 - kh0 == 3)
                (S == 1 ? run_s1_all : run_s2_all)(sums, r[0], r[1], r[2], dyp, out_c, hi - lo);
            else if (kh0 == 1)
                (S == 1 ? run_s1_low : run_s2_low)(sums, r[0], r[1], r[2], dyp, out_c, hi - lo);
            else
                (S == 1 ? run_s1_high : run_s2_high)(sums, r[0], r[1], r[2], dyp, out_c, hi - lo);
        } else {
            for (ow = lo; ow < hi; ++ow)
                one_position(sums, xm, in_w, ih, ow * S - p->pad_left, kh0, kh1, 0, 3,
                             dyr[(size_t)ow * out_c]);
        }
        for (ow = hi; ow < p->out_w; ++ow) {
            tap_range(ow, S, p->pad_left, in_w, &kw0, &kw1);
            one_position(sums, xm, in_w, ih, ow * S - p->pad_left, kh0, kh1, kw0, kw1,
                         dyr[(size_t)ow * out_c]);
        }
    }
    for (t = 0; t < 9; ++t)
        dw[t] += sums[t];
}

void mdy_depthwise_conv2d_nhwc_f32_wgrad(const mdy_conv_params *p, const float *x_maps,
                                         const uint16_t *sel, int32_t n_sel,
                                         const float *dy, float *dw_slices)
{
    const int32_t out_c = p->out_c;
    const int32_t m = out_c / p->in_c;
    const size_t map_size = (size_t)p->in_h * p->in_w;
    const size_t slice_size = (size_t)m * p->k_h * p->k_w;
    const int k3 = p->k_h == 3 && p->k_w == 3;
    int32_t k, j, kh, kw, oh, ow;

    for (k = 0; k < n_sel; ++k) {
        const int32_t c = sel[k];
        const float *xm = x_maps + (size_t)k * map_size;
        float *dw = dw_slices + (size_t)k * slice_size;
        if (c >= p->in_c)
            continue; /* an out-of-range channel would index dy out of bounds */
        for (j = 0; j < m; ++j) {
            const int32_t o = c * m + j;
            if (k3) {
                channel_3x3(p, xm, dy, o, dw + (size_t)j * 9);
                continue;
            }
            for (kh = 0; kh < p->k_h; ++kh) {
                for (kw = 0; kw < p->k_w; ++kw) {
                    float acc = 0.0f;
                    for (oh = 0; oh < p->out_h; ++oh) {
                        const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                        if (ih < 0 || ih >= p->in_h)
                            continue;
                        for (ow = 0; ow < p->out_w; ++ow) {
                            const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                            if (iw < 0 || iw >= p->in_w)
                                continue;
                            acc = fmaf(dy[((size_t)oh * p->out_w + ow) * out_c + o],
                                       xm[(size_t)ih * p->in_w + iw], acc);
                        }
                    }
                    dw[((size_t)j * p->k_h + kh) * p->k_w + kw] += acc;
                }
            }
        }
    }
}
