/* Depthwise conv 2D input gradient: register-blocked gather.
 *
 * The reference scatters: for each output position (raster order) and tap,
 * dx[ih][iw][c] += dy[oh][ow][o] * w[o][kh][kw]. With multiplier 1 every
 * output position reaches an input element through one tap at most, so the
 * element's terms arrive in raster order of (oh, ow). This kernel gathers
 * them in that same order per input element, 4 channels at a time in
 * registers (bit-identical to the reference), instead of loading and
 * storing dx once per term. For stride 1 and a kernel 3 wide, a row is done
 * as sliding windows: NP input positions read NP + 2 output columns, each
 * column once, with the 3 x NC weights of a kernel row held in registers. A
 * window at the map's edge skips the column before (LO) or after (HI) the
 * output row, so the edge positions (a quarter of an 8-wide row) share the
 * loads of their neighbours instead of gathering alone. Multipliers > 1 take
 * the reference's loops. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

/* Valid output range [o0, o1) reaching input coordinate i along one axis:
 * the outputs with 0 <= i + pad - o*stride < k. */
static void reach(int32_t i, int32_t stride, int32_t pad, int32_t k, int32_t out,
                  int32_t *o0, int32_t *o1)
{
    mdy_stride_span(i + pad - k + 1, i + pad, stride, out, o0, o1);
}

/* One input position, NC channels: terms of outputs [oh0, oh1) x [ow0, ow1). */
MDY_AI void gather_one(const int NC, const mdy_conv_params *p, const float *w,
                       const float *dy, float *dxp, int32_t ih, int32_t iw,
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
    /* [ow0, ow1) are exactly the outputs whose window holds iw (reach), so
     * along a row the tap column steps down by the stride, from the one of
     * ow0; one weight pointer per channel, set once per row */
    for (oh = oh0; oh < oh1; ++oh) {
        const int32_t kh = ih + p->pad_top - oh * p->stride_h;
        const int32_t kw0 = iw + p->pad_left - ow0 * p->stride_w;
        const float *dyp = dy + ((size_t)oh * p->out_w + ow0) * c;
        const float *wq[4];
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q)
            wq[q] = w + q * kk + (size_t)kh * p->k_w + kw0;
        for (ow = ow0; ow < ow1; ++ow, dyp += c) {
            const ptrdiff_t back = (ptrdiff_t)(ow - ow0) * p->stride_w;
MDY_UNROLL(4)
            for (q = 0; q < NC; ++q)
                acc[q] = fmaf(dyp[q], wq[q][-back], acc[q]);
        }
    }
MDY_UNROLL(4)
    for (q = 0; q < NC; ++q)
        dxp[q] = acc[q];
}

/* NP input positions of a row x NC channels, stride 1, k_w 3: output
 * columns t = LO .. NP + 1 - HI of the window whose column t = 0 is
 * iw + pad_left - 2 (the LO first and HI last are outside the output row);
 * dyc is column LO of row oh0. */
MDY_AI void gather_slide(const int NP, const int NC, const int LO, const int HI,
                         const mdy_conv_params *p, const float *w, const float *dyc,
                         float *dx0, int32_t ih, int32_t oh0, int32_t oh1, int accumulate)
{
    const int32_t c = p->in_c;
    const size_t kk = (size_t)p->k_h * p->k_w;
    float acc[6][4];
    int32_t oh;
    int j, q, t;
MDY_UNROLL(6)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q)
            acc[j][q] = accumulate ? dx0[(size_t)j * c + q] : 0.0f;
    for (oh = oh0; oh < oh1; ++oh) {
        const int32_t kh = ih + p->pad_top - oh * p->stride_h;
        const float *dyp = dyc + (size_t)(oh - oh0) * p->out_w * c;
        const float *wr = w + (size_t)kh * 3;
        float wv[3][4];
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q) {
            wv[0][q] = wr[q * kk];
            wv[1][q] = wr[q * kk + 1];
            wv[2][q] = wr[q * kk + 2];
        }
MDY_UNROLL(8)
        for (t = LO; t < NP + 2 - HI; ++t) {
            float g[4];
MDY_UNROLL(4)
            for (q = 0; q < NC; ++q)
                g[q] = dyp[q];
            dyp += c;
MDY_UNROLL(6)
            for (j = 0; j < NP; ++j) {
                const int kw = 2 - (t - j); /* ascending output column */
                if (kw >= 0 && kw < 3) {
MDY_UNROLL(4)
                    for (q = 0; q < NC; ++q)
                        acc[j][q] = fmaf(g[q], wv[kw][q], acc[j][q]);
                }
            }
        }
    }
MDY_UNROLL(6)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q)
            dx0[(size_t)j * c + q] = acc[j][q];
}

/* The last channel of an odd count, positions [iw, iw + n) of row ih, one
 * at a time (a one-channel window would double the code for a rare shape). */
static void odd_channel(int32_t n, const mdy_conv_params *p, const float *w, const float *dy,
                        float *dx, int32_t ih, int32_t iw, int32_t oh0, int32_t oh1,
                        int accumulate)
{
    const int32_t ch = p->in_c - 1;
    const size_t kk = (size_t)p->k_h * p->k_w;
    int32_t i, ow0, ow1;
    for (i = iw; i < iw + n; ++i) {
        reach(i, p->stride_w, p->pad_left, p->k_w, p->out_w, &ow0, &ow1);
        gather_one(1, p, w + ch * kk, dy + ch, dx + ((size_t)ih * p->in_w + i) * p->in_c + ch,
                   ih, i, oh0, oh1, ow0, ow1, accumulate);
    }
}

/* The window for every channel pair, then an odd last channel. */
MDY_AI void slide_channels(const int NP, const int LO, const int HI, const mdy_conv_params *p,
                           const float *w, const float *dy, float *dx, int32_t ih, int32_t iw,
                           int32_t oh0, int32_t oh1, int accumulate)
{
    const int32_t c = p->in_c;
    const size_t kk = (size_t)p->k_h * p->k_w;
    /* column LO of the window, whose column 0 is output column iw + pad_left - 2 */
    const float *dyc = dy + ((size_t)oh0 * p->out_w + iw + p->pad_left - 2 + LO) * c;
    float *dx0 = dx + ((size_t)ih * p->in_w + iw) * c;
    int32_t ch;
    for (ch = 0; ch + 2 <= c; ch += 2)
        gather_slide(NP, 2, LO, HI, p, w + ch * kk, dyc + ch, dx0 + ch, ih, oh0, oh1,
                     accumulate);
    if (ch < c)
        odd_channel(NP, p, w, dy, dx, ih, iw, oh0, oh1, accumulate);
}

/* One window of n (1..6) positions from iw, its edge columns skipped as
 * (lo, hi) say. */
static void slide(int32_t n, int lo, int hi, const mdy_conv_params *p, const float *w,
                  const float *dy, float *dx, int32_t ih, int32_t iw, int32_t oh0, int32_t oh1,
                  int accumulate)
{
#define MDY_DW_SLIDE(NP)                                                                    \
    do {                                                                                    \
        if (lo)                                                                             \
            if (hi) slide_channels(NP, 1, 1, p, w, dy, dx, ih, iw, oh0, oh1, accumulate);   \
            else    slide_channels(NP, 1, 0, p, w, dy, dx, ih, iw, oh0, oh1, accumulate);   \
        else if (hi) slide_channels(NP, 0, 1, p, w, dy, dx, ih, iw, oh0, oh1, accumulate);  \
        else         slide_channels(NP, 0, 0, p, w, dy, dx, ih, iw, oh0, oh1, accumulate);  \
    } while (0)
    switch (n) {
    case 6: MDY_DW_SLIDE(6); break;
    case 5: MDY_DW_SLIDE(5); break;
    case 4: MDY_DW_SLIDE(4); break;
    case 3: MDY_DW_SLIDE(3); break;
    case 2: MDY_DW_SLIDE(2); break;
    default: MDY_DW_SLIDE(1); break;
    }
#undef MDY_DW_SLIDE
}

static void multiplier_one(const mdy_conv_params *p, const float *w, const float *dy,
                           float *dx, int accumulate)
{
    const int32_t c = p->in_c;
    const size_t kk = (size_t)p->k_h * p->k_w;
    const int slide_rows = p->k_w == 3 && p->stride_w == 1;
    int32_t ih, iw, ch;
    for (ih = 0; ih < p->in_h; ++ih) {
        int32_t oh0, oh1;
        reach(ih, p->stride_h, p->pad_top, p->k_h, p->out_h, &oh0, &oh1);
        for (iw = 0; iw < p->in_w;) {
            int32_t ow0, ow1;
            float *dxp = dx + ((size_t)ih * p->in_w + iw) * c;
            if (slide_rows && oh1 > oh0) {
                int32_t lo, hi;
                const int32_t n = mdy_slide3_window(iw, p->in_w, p->pad_left, p->out_w, &lo, &hi);
                if (n > 0) {
                    slide(n, lo, hi, p, w, dy, dx, ih, iw, oh0, oh1, accumulate);
                    iw += n;
                    continue;
                }
            }
            reach(iw, p->stride_w, p->pad_left, p->k_w, p->out_w, &ow0, &ow1);
            for (ch = 0; ch + 4 <= c; ch += 4)
                gather_one(4, p, w + ch * kk, dy + ch, dxp + ch, ih, iw, oh0, oh1, ow0, ow1,
                           accumulate);
            for (; ch < c; ++ch)
                gather_one(1, p, w + ch * kk, dy + ch, dxp + ch, ih, iw, oh0, oh1, ow0, ow1,
                           accumulate);
            ++iw;
        }
    }
}

void mdy_depthwise_conv2d_nhwc_f32_igrad(const mdy_conv_params *p, const float *w,
                                         const float *dy, float *dx, int accumulate)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t m = out_c / in_c;
    int32_t oh, ow, o, kh, kw;

    if (m == 1) {
        multiplier_one(p, w, dy, dx, accumulate);
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
                    for (o = 0; o < out_c; ++o)
                        dxp[o / m] = fmaf(dyp[o], w[((size_t)o * p->k_h + kh) * p->k_w + kw],
                                          dxp[o / m]);
                }
            }
        }
    }
}
