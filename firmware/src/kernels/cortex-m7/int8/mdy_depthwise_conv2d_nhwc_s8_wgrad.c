/* Depthwise conv 2D sparse weight gradient from int8 saved maps: 3x3 kernels
 * in registers, the blocking of ../fp32/mdy_depthwise_conv2d_nhwc_f32_wgrad.c,
 * and 5- or 7-wide kernels one kernel row at a time.
 *
 * For output channel o of selected input channel c = sel[k], tap (kh, kw)
 * sums dy[oh][ow][o] * (float)(x_c[ih][iw] - x_zero) over the output
 * positions whose tap reads inside the map, in raster order, and adds
 * x_scale times the sum to the slice with one fmaf, as the reference does
 * (bit-identical); the sliding window converts each map code once for the
 * positions that read it. For 3x3 kernels the nine sums stay in
 * registers while the output positions are walked once in raster order
 * (each position adds to the taps it can see, so every tap's terms keep
 * their order); inside a row whose taps are all valid, NP positions are done
 * as a sliding window: each column of the 3-row input window is loaded once
 * for all the positions that read it (the map is planar, so the columns of
 * a row are adjacent); a border position missing one column (padding 1)
 * joins its row's run. For kernels 5 or 7 wide at stride 1 across, one
 * kernel row at a time keeps its K sums in registers over the output
 * positions in raster order (each tap's terms in their order), NP positions
 * as a sliding window over the input row (each code converted once for up
 * to K positions), the row's edges too where the padding there is "same"
 * (mdy_wide_window). Other kernel sizes and strides take the reference's
 * loops. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "../fp32/mdy_blocking.h"

/* NP positions of one output row that see kernel rows [KH0, KH1); horizontal
 * stride S. Their window of input columns t = 0 .. (NP - 1) * S + 2 lies
 * inside the map but for the LO first and the HI last columns (a padding's,
 * never read: their taps have no term). r[kh] is input row kh at column LO;
 * dyp the first position's dy element. */
MDY_AI void slide(const int NP, const int S, const int KH0, const int KH1, const int LO,
                  const int HI, float acc[3][3], const int8_t *const r[3], int32_t x_zero,
                  const float *dyp, int32_t out_c)
{
    float d[4];
    int j, t, kh;
MDY_UNROLL(6)
    for (j = 0; j < NP; ++j)
        d[j] = dyp[(size_t)j * out_c];
MDY_UNROLL(16)
    for (t = LO; t < (NP - 1) * S + 3 - HI; ++t) {
        float xv[3];
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            xv[kh] = (float)((int32_t)r[kh][t - LO] - x_zero);
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
MDY_AI void one_position(float *sums, const int8_t *xm, int32_t x_zero, int32_t in_w, int32_t ih,
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
            sums[kh * 3 + kw] =
                fmaf(d, (float)((int32_t)xm[(size_t)(ih + kh) * in_w + (iw + kw)] - x_zero),
                     sums[kh * 3 + kw]);
        }
    }
}

/* A row's run (see slide): an edge position whose window misses the column
 * before the map if lo, n interior positions, an edge position missing the
 * column after the map if hi; the nine sums loaded from and stored back to
 * sums[] once per run. r0 .. r2 are at the first column read. */
MDY_AI void run(const int S, const int KH0, const int KH1, float *sums,
                const int8_t *r0, const int8_t *r1, const int8_t *r2, int32_t x_zero,
                const float *dyp, int32_t out_c, int32_t n, int lo, int hi)
{
    float acc[3][3];
    const int8_t *r[3];
    int kh, kw;
    r[0] = r0, r[1] = r1, r[2] = r2;
MDY_UNROLL(3)
    for (kh = KH0; kh < KH1; ++kh)
MDY_UNROLL(3)
        for (kw = 0; kw < 3; ++kw)
            acc[kh][kw] = sums[kh * 3 + kw];
    if (lo) {
        slide(1, S, KH0, KH1, 1, 0, acc, r, x_zero, dyp, out_c);
        dyp += out_c;
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            r[kh] += S - 1;
    }
    for (; n >= 4; n -= 4, dyp += 4 * out_c) {
        slide(4, S, KH0, KH1, 0, 0, acc, r, x_zero, dyp, out_c);
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            r[kh] += 4 * S;
    }
    if (n == 3)
        slide(3, S, KH0, KH1, 0, 0, acc, r, x_zero, dyp, out_c);
    else if (n == 2)
        slide(2, S, KH0, KH1, 0, 0, acc, r, x_zero, dyp, out_c);
    else if (n == 1)
        slide(1, S, KH0, KH1, 0, 0, acc, r, x_zero, dyp, out_c);
    if (hi) {
        dyp += n * out_c;
MDY_UNROLL(3)
        for (kh = KH0; kh < KH1; ++kh)
            r[kh] += n * S;
        slide(1, S, KH0, KH1, 0, 1, acc, r, x_zero, dyp, out_c);
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
    static MDY_NOINLINE void name(float *sums, const int8_t *r0, const int8_t *r1,   \
                                  const int8_t *r2, int32_t x_zero, const float *dyp, \
                                  int32_t out_c, int32_t n, int lo, int hi)          \
    {                                                                                \
        run(S, KH0, KH1, sums, r0, r1, r2, x_zero, dyp, out_c, n, lo, hi);           \
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

static void channel_3x3(const mdy_conv_params *p, const int8_t *xm, int32_t x_zero,
                        float x_scale, const float *dy, int32_t o, float *dw)
{
    const int32_t out_c = p->out_c, in_w = p->in_w, S = p->stride_w;
    /* the outputs whose window lies inside the map across: [lo, hi) */
    int32_t lo = (p->pad_left + S - 1) / S;
    int32_t hi = in_w - 3 + p->pad_left < 0 ? 0 : (in_w - 3 + p->pad_left) / S + 1;
    float sums[9];
    int32_t oh, ow;
    int t, edge_lo, edge_hi;
    if (hi > p->out_w)
        hi = p->out_w;
    if (lo > hi || (S != 1 && S != 2))
        lo = hi = p->out_w; /* no sliding run: every position on its own */
    /* a left or right border of one position that misses one column only
     * joins the run (padding 1 on that side, the usual case) */
    edge_lo = hi > lo && lo == 1 && p->pad_left == 1;
    edge_hi = hi > lo && hi == p->out_w - 1 && (p->out_w - 1) * S - p->pad_left + 2 == in_w;
    for (t = 0; t < 9; ++t)
        sums[t] = 0.0f;
    for (oh = 0; oh < p->out_h; ++oh) {
        const int32_t ih = oh * p->stride_h - p->pad_top;
        const float *dyr = dy + (size_t)oh * p->out_w * out_c + o;
        int32_t kh0, kh1, kw0, kw1;
        const int slide = hi > lo;
        int run_lo = 0, run_hi = 0;
        tap_range(oh, p->stride_h, p->pad_top, p->in_h, &kh0, &kh1);
        if (slide && kh1 - kh0 >= 2)
            run_lo = edge_lo, run_hi = edge_hi;
        /* raster order: left border, the run, right border */
        for (ow = 0; ow < (slide ? lo - run_lo : p->out_w); ++ow) {
            tap_range(ow, S, p->pad_left, in_w, &kw0, &kw1);
            one_position(sums, xm, x_zero, in_w, ih, ow * S - p->pad_left, kh0, kh1, kw0, kw1,
                         dyr[(size_t)ow * out_c]);
        }
        if (!slide)
            continue;
        if (kh1 - kh0 >= 2) {
            /* all kernel rows, or the top or bottom two, from the first
             * column read (the map's first one if the run has the left edge) */
            const int8_t *r[3] = {xm, xm, xm};
            const float *dyp = dyr + (size_t)(lo - run_lo) * out_c;
            const int32_t iw0 = run_lo ? 0 : lo * S - p->pad_left;
            for (t = (int)kh0; t < (int)kh1; ++t)
                r[t] = xm + (size_t)(ih + t) * in_w + iw0;
            if (kh1 - kh0 == 3)
                (S == 1 ? run_s1_all : run_s2_all)(sums, r[0], r[1], r[2], x_zero, dyp, out_c,
                                                      hi - lo, run_lo, run_hi);
            else if (kh0 == 1)
                (S == 1 ? run_s1_low : run_s2_low)(sums, r[0], r[1], r[2], x_zero, dyp, out_c,
                                                      hi - lo, run_lo, run_hi);
            else
                (S == 1 ? run_s1_high : run_s2_high)(sums, r[0], r[1], r[2], x_zero, dyp, out_c,
                                                      hi - lo, run_lo, run_hi);
        } else {
            for (ow = lo; ow < hi; ++ow)
                one_position(sums, xm, x_zero, in_w, ih, ow * S - p->pad_left, kh0, kh1, 0, 3,
                             dyr[(size_t)ow * out_c]);
        }
        for (ow = hi + run_hi; ow < p->out_w; ++ow) {
            tap_range(ow, S, p->pad_left, in_w, &kw0, &kw1);
            one_position(sums, xm, x_zero, in_w, ih, ow * S - p->pad_left, kh0, kh1, kw0, kw1,
                         dyr[(size_t)ow * out_c]);
        }
    }
    for (t = 0; t < 9; ++t)
        dw[t] = fmaf(x_scale, sums[t], dw[t]);
}

/* NP positions of one output row, kernel row K wide at stride 1: the input
 * columns t = LO .. NP + K - 2 - HI of their window (the LO first and HI
 * last are a padding's), xc at column LO; dyp the first position's dy. */
MDY_AI void row_slide(const int NP, const int K, const int LO, const int HI, float acc[7],
                      const int8_t *xc, int32_t x_zero, const float *dyp, int32_t out_c)
{
    float d[4];
    int j, t;
MDY_UNROLL(4)
    for (j = 0; j < NP; ++j)
        d[j] = dyp[(size_t)j * out_c];
MDY_UNROLL(10)
    for (t = LO; t < NP + K - 1 - HI; ++t) {
        const float xv = (float)((int32_t)xc[t - LO] - x_zero);
MDY_UNROLL(4)
        for (j = 0; j < NP; ++j) {
            const int kw = t - j; /* ascending positions per tap */
            if (kw >= 0 && kw < K)
                acc[kw] = fmaf(d[j], xv, acc[kw]);
        }
    }
}

/* A kernel 5 or 7 wide, stride 1 across: output channel o's slice (rows of
 * K taps) from the planar map xm, one kernel row at a time. */
MDY_AI void channel_wide(const int K, const mdy_conv_params *p, const int8_t *xm,
                         int32_t x_zero, float x_scale, const float *dy, int32_t o, float *dw)
{
    const int E = (K - 1) / 2;
    const int32_t out_c = p->out_c, in_w = p->in_w;
    int32_t kh, oh, ow, lo, hi, n;
    int kw;
    for (kh = 0; kh < p->k_h; ++kh) {
        float acc[7];
MDY_UNROLL(7)
        for (kw = 0; kw < K; ++kw)
            acc[kw] = 0.0f;
        for (oh = 0; oh < p->out_h; ++oh) {
            const int32_t ih = oh * p->stride_h + kh - p->pad_top;
            const int8_t *xr;
            const float *dyr = dy + (size_t)oh * p->out_w * out_c + o;
            if (ih < 0 || ih >= p->in_h)
                continue;
            xr = xm + (size_t)ih * in_w;
            for (ow = 0; ow < p->out_w; ow += n) {
                const int32_t base = ow - p->pad_left;
                const float *dyp = dyr + (size_t)ow * out_c;
                n = mdy_wide_window(K, ow, p->out_w, base, in_w, &lo, &hi);
                if (n == 0) { /* alone: the taps inside the map */
                    const float d = *dyp;
MDY_UNROLL(7)
                    for (kw = 0; kw < K; ++kw) {
                        if (base + kw >= 0 && base + kw < in_w)
                            acc[kw] = fmaf(d, (float)((int32_t)xr[base + kw] - x_zero),
                                           acc[kw]);
                    }
                    n = 1;
                } else if (lo && hi) {
                    row_slide(4, K, E, E, acc, xr + base + lo, x_zero, dyp, out_c);
                } else if (lo) {
                    row_slide(4, K, E, 0, acc, xr + base + lo, x_zero, dyp, out_c);
                } else if (hi && n == 4) {
                    row_slide(4, K, 0, E, acc, xr + base, x_zero, dyp, out_c);
                } else if (hi && n == 3) {
                    row_slide(3, K, 0, E, acc, xr + base, x_zero, dyp, out_c);
                } else if (hi && n == 2) {
                    row_slide(2, K, 0, E, acc, xr + base, x_zero, dyp, out_c);
                } else if (hi) {
                    row_slide(1, K, 0, E, acc, xr + base, x_zero, dyp, out_c);
                } else if (n == 4) {
                    row_slide(4, K, 0, 0, acc, xr + base, x_zero, dyp, out_c);
                } else if (n == 3) {
                    row_slide(3, K, 0, 0, acc, xr + base, x_zero, dyp, out_c);
                } else if (n == 2) {
                    row_slide(2, K, 0, 0, acc, xr + base, x_zero, dyp, out_c);
                } else {
                    row_slide(1, K, 0, 0, acc, xr + base, x_zero, dyp, out_c);
                }
            }
        }
MDY_UNROLL(7)
        for (kw = 0; kw < K; ++kw)
            dw[kh * K + kw] = fmaf(x_scale, acc[kw], dw[kh * K + kw]);
    }
}

static MDY_NOINLINE void channel_5(const mdy_conv_params *p, const int8_t *xm, int32_t x_zero,
                                   float x_scale, const float *dy, int32_t o, float *dw)
{
    channel_wide(5, p, xm, x_zero, x_scale, dy, o, dw);
}

static MDY_NOINLINE void channel_7(const mdy_conv_params *p, const int8_t *xm, int32_t x_zero,
                                   float x_scale, const float *dy, int32_t o, float *dw)
{
    channel_wide(7, p, xm, x_zero, x_scale, dy, o, dw);
}

void mdy_depthwise_conv2d_nhwc_s8_wgrad(const mdy_conv_params *p, const int8_t *x_maps,
                                        int32_t x_zero, float x_scale, const uint16_t *sel,
                                        int32_t n_sel, const float *dy, float *dw_slices)
{
    const int32_t out_c = p->out_c;
    const int32_t m = out_c / p->in_c;
    const size_t map_size = (size_t)p->in_h * p->in_w;
    const size_t slice_size = (size_t)m * p->k_h * p->k_w;
    const int k3 = p->k_h == 3 && p->k_w == 3;
    const int wide = (p->k_w == 5 || p->k_w == 7) && p->stride_w == 1;
    int32_t k, j, kh, kw, oh, ow;

    for (k = 0; k < n_sel; ++k) {
        const int32_t c = sel[k];
        const int8_t *xm = x_maps + (size_t)k * map_size;
        float *dw = dw_slices + (size_t)k * slice_size;
        if (c >= p->in_c)
            continue; /* an out-of-range channel would index dy out of bounds */
        for (j = 0; j < m; ++j) {
            const int32_t o = c * m + j;
            if (k3) {
                channel_3x3(p, xm, x_zero, x_scale, dy, o, dw + (size_t)j * 9);
                continue;
            }
            if (wide) {
                if (p->k_w == 5)
                    channel_5(p, xm, x_zero, x_scale, dy, o, dw + (size_t)j * p->k_h * 5);
                else
                    channel_7(p, xm, x_zero, x_scale, dy, o, dw + (size_t)j * p->k_h * 7);
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
                                       (float)((int32_t)xm[(size_t)ih * p->in_w + iw] - x_zero),
                                       acc);
                        }
                    }
                    dw[((size_t)j * p->k_h + kh) * p->k_w + kw] =
                        fmaf(x_scale, acc, dw[((size_t)j * p->k_h + kh) * p->k_w + kw]);
                }
            }
        }
    }
}
