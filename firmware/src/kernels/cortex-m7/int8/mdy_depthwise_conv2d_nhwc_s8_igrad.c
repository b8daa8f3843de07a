/* Depthwise conv 2D input gradient through a frozen int8 layer:
 * register-blocked gather, the blocking of
 * ../fp32/mdy_depthwise_conv2d_nhwc_f32_igrad.c.
 *
 * The reference scatters: for each output position (raster order) and tap,
 * dx[ih][iw][c] += g * (float)w[o][kh][kw], g = dy[oh][ow][o] * w_scale[o]
 * rounded once; here g and the terms are the same operations, one fmaf per
 * term. With multiplier 1 every output position reaches an input element
 * through one tap at most, so the element's terms arrive in raster order of
 * (oh, ow). This kernel gathers them in that same order per input element,
 * 4 channels at a time in registers (bit-identical to the reference),
 * instead of loading and storing dx once per term. For stride 1 and a
 * kernel K = 3, 5 or 7 wide (the fp32 kernel: 3 only), the interior of a row
 * is done as a sliding window: NP input positions read NP + K - 1 output
 * columns, each column once (g computed once per column), with the K x NC
 * weights of a kernel row converted once and held in registers. The
 * windows cover the map's edge positions too, as in the fp32 kernel (a
 * window skips the columns before, LO, or after, HI, the output row): for
 * K = 3 always, for K = 5 and 7 where the padding on that side is "same",
 * (K - 1) / 2, as in MobileNet-style layers (mdy_wide_window).
 * Multipliers > 1 take the reference's loops. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "../fp32/mdy_blocking.h"

/* Valid output range [o0, o1) reaching input coordinate i along one axis:
 * the outputs with 0 <= i + pad - o*stride < k. */
static void reach(int32_t i, int32_t stride, int32_t pad, int32_t k, int32_t out,
                  int32_t *o0, int32_t *o1)
{
    mdy_stride_span(i + pad - k + 1, i + pad, stride, out, o0, o1);
}

/* One input position, NC channels: terms of outputs [oh0, oh1) x [ow0, ow1). */
MDY_AI void gather_one(const int NC, const mdy_conv_params *p, const int8_t *w,
                       const float *sc, const float *dy, float *dxp, int32_t ih, int32_t iw,
                       int32_t oh0, int32_t oh1, int32_t ow0, int32_t ow1, int accumulate)
{
    const int32_t c = p->in_c;
    const size_t kk = (size_t)p->k_h * p->k_w;
    float acc[4];
    int32_t oh, ow;
    int q;
MDY_UNROLL(4)
    for (q = 0; q < NC; ++q)
        acc[q] = accumulate ? dxp[q] : 0.0f;
    for (oh = oh0; oh < oh1; ++oh) {
        const int32_t kh = ih + p->pad_top - oh * p->stride_h;
        for (ow = ow0; ow < ow1; ++ow) {
            const int32_t kw = iw + p->pad_left - ow * p->stride_w;
            const float *dyp = dy + ((size_t)oh * p->out_w + ow) * c;
            const int8_t *wp = w + (size_t)kh * p->k_w + kw;
            if (kw < 0 || kw >= p->k_w)
                continue; /* stride > 1: this output's window skips iw */
MDY_UNROLL(4)
            for (q = 0; q < NC; ++q)
                acc[q] = fmaf(dyp[q] * sc[q], (float)wp[q * kk], acc[q]);
        }
    }
MDY_UNROLL(4)
    for (q = 0; q < NC; ++q)
        dxp[q] = acc[q];
}

/* NP input positions of a row x NC channels, stride 1, k_w K: output
 * columns t = LO .. NP + K - 2 - HI of the window whose column t = 0 is
 * iw + pad_left - (K - 1) (the LO first and HI last are outside the output
 * row); dyc is column LO of row oh0. */
MDY_AI void gather_slide(const int NP, const int NC, const int K, const int LO, const int HI,
                         const mdy_conv_params *p, const int8_t *w, const float *sc,
                         const float *dyc, float *dx0, int32_t ih, int32_t oh0, int32_t oh1,
                         int accumulate)
{
    const int32_t c = p->in_c;
    const size_t kk = (size_t)p->k_h * p->k_w;
    float acc[6][2], s[2];
    int32_t oh;
    int j, q, t, kw;
MDY_UNROLL(2)
    for (q = 0; q < NC; ++q)
        s[q] = sc[q];
MDY_UNROLL(6)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(2)
        for (q = 0; q < NC; ++q)
            acc[j][q] = accumulate ? dx0[(size_t)j * c + q] : 0.0f;
    for (oh = oh0; oh < oh1; ++oh) {
        const int32_t kh = ih + p->pad_top - oh * p->stride_h;
        const float *dyp = dyc + (size_t)(oh - oh0) * p->out_w * c;
        const int8_t *wr = w + (size_t)kh * K;
        float wv[7][2];
MDY_UNROLL(2)
        for (q = 0; q < NC; ++q)
MDY_UNROLL(7)
            for (kw = 0; kw < K; ++kw)
                wv[kw][q] = (float)wr[q * kk + kw];
MDY_UNROLL(12)
        for (t = LO; t < NP + K - 1 - HI; ++t) {
            float g[2];
MDY_UNROLL(2)
            for (q = 0; q < NC; ++q)
                g[q] = dyp[q] * s[q];
            dyp += c;
MDY_UNROLL(6)
            for (j = 0; j < NP; ++j) {
                const int k = K - 1 - (t - j); /* ascending output column */
                if (k >= 0 && k < K) {
MDY_UNROLL(2)
                    for (q = 0; q < NC; ++q)
                        acc[j][q] = fmaf(g[q], wv[k][q], acc[j][q]);
                }
            }
        }
    }
MDY_UNROLL(6)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(2)
        for (q = 0; q < NC; ++q)
            dx0[(size_t)j * c + q] = acc[j][q];
}

/* The last channel of an odd count, positions [iw, iw + n) of row ih, one
 * at a time (a one-channel window per edge shape would double the code). */
static void odd_channel(int32_t n, const mdy_conv_params *p, const int8_t *w, const float *sc,
                        const float *dy, float *dx, int32_t ih, int32_t iw, int32_t oh0,
                        int32_t oh1, int accumulate)
{
    const int32_t ch = p->in_c - 1;
    const size_t kk = (size_t)p->k_h * p->k_w;
    int32_t i, ow0, ow1;
    for (i = iw; i < iw + n; ++i) {
        reach(i, p->stride_w, p->pad_left, p->k_w, p->out_w, &ow0, &ow1);
        gather_one(1, p, w + ch * kk, sc + ch, dy + ch,
                   dx + ((size_t)ih * p->in_w + i) * p->in_c + ch, ih, i, oh0, oh1, ow0, ow1,
                   accumulate);
    }
}

/* The window for every channel pair, then an odd last channel: through a
 * one-channel window inside the map for K = 5 and 7, position by position
 * at an edge and for K = 3 (a one-channel window per edge shape would cost
 * more code than its work pays). */
MDY_AI void slide_channels(const int NP, const int K, const int LO, const int HI,
                           const mdy_conv_params *p, const int8_t *w, const float *sc,
                           const float *dy, float *dx, int32_t ih, int32_t iw, int32_t oh0,
                           int32_t oh1, int accumulate)
{
    const int32_t c = p->in_c;
    const size_t kk = (size_t)p->k_h * p->k_w;
    const float *dyc = dy + ((size_t)oh0 * p->out_w + iw + p->pad_left - (K - 1) + LO) * c;
    float *dx0 = dx + ((size_t)ih * p->in_w + iw) * c;
    int32_t ch;
    for (ch = 0; ch + 2 <= c; ch += 2)
        gather_slide(NP, 2, K, LO, HI, p, w + ch * kk, sc + ch, dyc + ch, dx0 + ch, ih, oh0,
                     oh1, accumulate);
    if (ch < c) {
        if (K == 3 || LO || HI)
            odd_channel(NP, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
        else
            gather_slide(NP, 1, K, 0, 0, p, w + ch * kk, sc + ch, dyc + ch, dx0 + ch, ih, oh0,
                         oh1, accumulate);
    }
}

/* A run of n <= 6 positions from iw, kernel 3 wide, the edge columns
 * skipped as (lo, hi) say (0 or 1 each). */
MDY_AI void slide_run3(int32_t n, int lo, int hi, const mdy_conv_params *p, const int8_t *w,
                       const float *sc, const float *dy, float *dx, int32_t ih, int32_t iw,
                       int32_t oh0, int32_t oh1, int accumulate)
{
#define MDY_DW_SLIDE(NP)                                                                     \
    do {                                                                                     \
        if (!lo && !hi)                                                                      \
            slide_channels(NP, 3, 0, 0, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);     \
        else if (lo && hi)                                                                   \
            slide_channels(NP, 3, 1, 1, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);     \
        else if (lo)                                                                         \
            slide_channels(NP, 3, 1, 0, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);     \
        else                                                                                 \
            slide_channels(NP, 3, 0, 1, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);     \
    } while (0)
    if (n == 6)
        MDY_DW_SLIDE(6);
    else if (n == 5)
        MDY_DW_SLIDE(5);
    else if (n == 4)
        MDY_DW_SLIDE(4);
    else if (n == 3)
        MDY_DW_SLIDE(3);
    else if (n == 2)
        MDY_DW_SLIDE(2);
    else
        MDY_DW_SLIDE(1);
#undef MDY_DW_SLIDE
}

/* A run of n <= 4 positions from iw, kernel K = 5 or 7 wide (the kernel
 * row's K x 2 weights stay in registers too). Inside the map any n; at an
 * edge (lo or hi, each 0 or E = (K - 1) / 2) the shapes mdy_wide_window
 * gives: 4 positions missing E before, after or both, or the row's last 1
 * to 3 missing E after (every edge shape at every n cost 18 KB of flash in
 * a first version). */
MDY_AI void slide_run_wide(const int K, int32_t n, int lo, int hi, const mdy_conv_params *p,
                           const int8_t *w, const float *sc, const float *dy, float *dx,
                           int32_t ih, int32_t iw, int32_t oh0, int32_t oh1, int accumulate)
{
    const int E = (K - 1) / 2;
    if (lo && hi)
        slide_channels(4, K, E, E, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else if (lo)
        slide_channels(4, K, E, 0, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else if (hi && n == 4)
        slide_channels(4, K, 0, E, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else if (hi && n == 3)
        slide_channels(3, K, 0, E, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else if (hi && n == 2)
        slide_channels(2, K, 0, E, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else if (hi)
        slide_channels(1, K, 0, E, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else if (n == 4)
        slide_channels(4, K, 0, 0, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else if (n == 3)
        slide_channels(3, K, 0, 0, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else if (n == 2)
        slide_channels(2, K, 0, 0, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else
        slide_channels(1, K, 0, 0, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
}

/* The window from input column iw of row ih, if it has one (else 0), done:
 * its positions. Kernels 3 wide, and 5 or 7 wide, each instantiated apart
 * (out of line, so that one's variants do not crowd the other's registers). */
static MDY_NOINLINE int32_t slide3(const mdy_conv_params *p, const int8_t *w, const float *sc,
                                   const float *dy, float *dx, int32_t ih, int32_t iw,
                                   int32_t oh0, int32_t oh1, int accumulate)
{
    int32_t lo, hi;
    const int32_t n = mdy_slide3_window(iw, p->in_w, p->pad_left, p->out_w, &lo, &hi);
    if (n > 0)
        slide_run3(n, lo, hi, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    return n;
}

static MDY_NOINLINE int32_t slide_wide(const mdy_conv_params *p, const int8_t *w,
                                       const float *sc, const float *dy, float *dx, int32_t ih,
                                       int32_t iw, int32_t oh0, int32_t oh1, int accumulate)
{
    const int32_t k = p->k_w;
    int32_t lo, hi;
    const int32_t n = mdy_wide_window(k, iw, p->in_w, iw + p->pad_left - (k - 1), p->out_w,
                                      &lo, &hi);
    if (n > 0 && k == 5)
        slide_run_wide(5, n, lo, hi, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    else if (n > 0)
        slide_run_wide(7, n, lo, hi, p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
    return n;
}

static void multiplier_one(const mdy_conv_params *p, const int8_t *w, const float *sc,
                           const float *dy, float *dx, int accumulate)
{
    const int32_t c = p->in_c, K = p->k_w;
    const size_t kk = (size_t)p->k_h * p->k_w;
    const int slide = (K == 3 || K == 5 || K == 7) && p->stride_w == 1;
    int32_t ih, iw, ch;
    for (ih = 0; ih < p->in_h; ++ih) {
        int32_t oh0, oh1;
        reach(ih, p->stride_h, p->pad_top, p->k_h, p->out_h, &oh0, &oh1);
        for (iw = 0; iw < p->in_w;) {
            int32_t ow0, ow1;
            float *dxp = dx + ((size_t)ih * p->in_w + iw) * c;
            if (slide && oh1 > oh0) {
                const int32_t n =
                    K == 3 ? slide3(p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate)
                           : slide_wide(p, w, sc, dy, dx, ih, iw, oh0, oh1, accumulate);
                if (n > 0) {
                    iw += n;
                    continue;
                }
            }
            reach(iw, p->stride_w, p->pad_left, K, p->out_w, &ow0, &ow1);
            for (ch = 0; ch + 4 <= c; ch += 4)
                gather_one(4, p, w + ch * kk, sc + ch, dy + ch, dxp + ch, ih, iw, oh0, oh1, ow0,
                           ow1, accumulate);
            for (; ch < c; ++ch)
                gather_one(1, p, w + ch * kk, sc + ch, dy + ch, dxp + ch, ih, iw, oh0, oh1, ow0,
                           ow1, accumulate);
            ++iw;
        }
    }
}

void mdy_depthwise_conv2d_nhwc_s8_igrad(const mdy_conv_params *p, const int8_t *w,
                                        const float *w_scales, const float *dy, float *dx,
                                        int accumulate)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t m = out_c / in_c;
    int32_t oh, ow, o, kh, kw;

    if (m == 1) {
        multiplier_one(p, w, w_scales, dy, dx, accumulate);
        return;
    }
    if (!accumulate) {
        const int32_t n = p->in_h * p->in_w * in_c;
        int32_t i;
        for (i = 0; i < n; ++i)
            dx[i] = 0.0f;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            const float *dyp = dy + ((size_t)oh * p->out_w + ow) * out_c;
            for (kh = 0; kh < p->k_h; ++kh) {
                const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                if (ih < 0 || ih >= p->in_h)
                    continue;
                for (kw = 0; kw < p->k_w; ++kw) {
                    const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                    float *dxp;
                    if (iw < 0 || iw >= p->in_w)
                        continue;
                    dxp = dx + ((size_t)ih * p->in_w + iw) * in_c;
                    for (o = 0; o < out_c; ++o) {
                        const float g = dyp[o] * w_scales[o];
                        dxp[o / m] = fmaf(g, (float)w[((size_t)o * p->k_h + kh) * p->k_w + kw],
                                          dxp[o / m]);
                    }
                }
            }
        }
    }
}
