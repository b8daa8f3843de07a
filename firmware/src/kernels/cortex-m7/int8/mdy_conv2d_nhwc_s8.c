/* Conv 2D forward, int8, NHWC, groups == 1 (pointwise and general), Cortex-M7:
 * the reference's accumulators (bias + sum (x - x_zero) w over in-range taps)
 * with two MACs per SMLAD, bit-identical to ../../reference/int8/.
 *
 * No im2col and no scratch: in NHWC the in-range taps of one kernel row of an
 * output position are contiguous in x (kw0..kw1-1, all channels), and so are
 * their weights in OHWI, so each kernel row is one dot product of length
 * (kw1 - kw0) * in_c, widened from int8 on the fly. A block of 2 output
 * positions (adjacent in the row, with the same in-range taps: the row's
 * interior) times 4 output channels shares each widened word: per 4 input
 * values, 2 x words and 4 weight words feed 16 SMLADs (32 MACs). Border
 * positions, and the channels past a multiple of 4, run in smaller blocks of
 * the same code. A pointwise conv is the case of one row of length in_c. */
#include "medyate.h"
#include "mdy_s8_dsp.h"

/* Blocks of up to MDY_S8_NP positions x MDY_S8_NC channels (mdy_s8_dsp.h). */
#define NP_MAX MDY_S8_NP
#define NC_MAX MDY_S8_NC

/* Outputs o..o+nc-1 of the np positions whose kernel rows kh0..kh1-1 and
 * columns kw0..kw1-1 are in range; xoff[p]: the offset in x of (the row of
 * kh = 0, the column of kw0) of position p, which may lie before x: a pointer
 * is formed only for in-range rows. */
MDY_AI void channels_block(const int np, const int nc, const mdy_conv_params *prm,
                           const mdy_s8_conv_quant *q, const int8_t *x,
                           const ptrdiff_t *xoff, const int8_t *w, const int32_t *bias, int8_t *const *yp, int32_t o,
                           int32_t kh0, int32_t kh1, int32_t kw0, int32_t kw1)
{
    const size_t x_row = (size_t)prm->in_w * prm->in_c;
    const size_t w_oc = (size_t)prm->k_h * prm->k_w * prm->in_c;
    const int32_t len = (kw1 - kw0) * prm->in_c;
    int32_t acc[NP_MAX][NC_MAX];
    const int8_t *xs[NP_MAX], *ws[NC_MAX];
    int32_t kh;
    int p, j;
    MDY_UNROLL(4)
    for (j = 0; j < nc; ++j) {
        MDY_UNROLL(2)
        for (p = 0; p < np; ++p)
            acc[p][j] = bias ? bias[o + j] : 0;
    }
    for (kh = kh0; kh < kh1; ++kh) {
        MDY_UNROLL(2)
        for (p = 0; p < np; ++p)
            xs[p] = x + (xoff[p] + (ptrdiff_t)kh * (ptrdiff_t)x_row);
        MDY_UNROLL(4)
        for (j = 0; j < nc; ++j)
            ws[j] = w + (size_t)(o + j) * w_oc + ((size_t)kh * prm->k_w + kw0) * prm->in_c;
        s8_dot_block(np, nc, len, xs, ws, q->x_zero, acc);
    }
    MDY_UNROLL(4)
    for (j = 0; j < nc; ++j) {
        const int32_t mult = q->multiplier[o + j], shift = q->shift[o + j];
        MDY_UNROLL(2)
        for (p = 0; p < np; ++p)
            yp[p][o + j] = mdy_output_s8(acc[p][j], mult, shift, q->y_zero, q->act_min,
                                         q->act_max);
    }
}

/* Every output channel of np positions sharing their in-range taps. */
MDY_AI void positions_block(const int np, const mdy_conv_params *prm, const mdy_s8_conv_quant *q,
                            const int8_t *x, const ptrdiff_t *xoff, const int8_t *w,
                            const int32_t *bias, int8_t *const *yp, int32_t kh0, int32_t kh1, int32_t kw0,
                            int32_t kw1)
{
    int32_t o = 0;
    if (kh0 >= kh1 || kw0 >= kw1)
        kh1 = kh0; /* a window entirely in the padding: bias alone */
    for (; o + NC_MAX <= prm->out_c; o += NC_MAX)
        channels_block(np, NC_MAX, prm, q, x, xoff, w, bias, yp, o, kh0, kh1, kw0, kw1);
    for (; o < prm->out_c; ++o)
        channels_block(np, 1, prm, q, x, xoff, w, bias, yp, o, kh0, kh1, kw0, kw1);
}

MDY_NOINLINE static void positions_2(const mdy_conv_params *prm, const mdy_s8_conv_quant *q,
                                     const int8_t *x, const ptrdiff_t *xoff,
                                     const int8_t *w, const int32_t *bias, int8_t *const *yp, int32_t kh0,
                                     int32_t kh1, int32_t kw0, int32_t kw1)
{
    positions_block(2, prm, q, x, xoff, w, bias, yp, kh0, kh1, kw0, kw1);
}

MDY_NOINLINE static void positions_1(const mdy_conv_params *prm, const mdy_s8_conv_quant *q,
                                     const int8_t *x, const ptrdiff_t *xoff,
                                     const int8_t *w, const int32_t *bias, int8_t *const *yp, int32_t kh0,
                                     int32_t kh1, int32_t kw0, int32_t kw1)
{
    positions_block(1, prm, q, x, xoff, w, bias, yp, kh0, kh1, kw0, kw1);
}

/* In-range kernel columns [*k0, *k1) of the window starting at input column i0. */
static void tap_range(int32_t i0, int32_t k, int32_t in, int32_t *k0, int32_t *k1)
{
    *k0 = i0 < 0 ? -i0 : 0;
    *k1 = in - i0 < k ? in - i0 : k;
}

void mdy_conv2d_nhwc_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                        const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    int32_t oh, ow;

    for (oh = 0; oh < p->out_h; ++oh) {
        const int32_t ih0 = oh * p->stride_h - p->pad_top;
        int32_t kh0, kh1;
        tap_range(ih0, p->k_h, p->in_h, &kh0, &kh1);
        for (ow = 0; ow < p->out_w;) {
            const int32_t iw0 = ow * p->stride_w - p->pad_left;
            ptrdiff_t xoff[NP_MAX];
            int8_t *yp[NP_MAX];
            int32_t kw0, kw1, kw0b = 0, kw1b = 0;
            tap_range(iw0, p->k_w, p->in_w, &kw0, &kw1);
            if (ow + 1 < p->out_w)
                tap_range(iw0 + p->stride_w, p->k_w, p->in_w, &kw0b, &kw1b);
            xoff[0] = ((ptrdiff_t)ih0 * p->in_w + iw0 + kw0) * in_c;
            yp[0] = y + ((size_t)oh * p->out_w + ow) * out_c;
            if (ow + 1 < p->out_w && kw0b == kw0 && kw1b == kw1) {
                xoff[1] = xoff[0] + (ptrdiff_t)p->stride_w * in_c;
                yp[1] = yp[0] + out_c;
                positions_2(p, q, x, xoff, w, bias, yp, kh0, kh1, kw0, kw1);
                ow += 2;
            } else {
                positions_1(p, q, x, xoff, w, bias, yp, kh0, kh1, kw0, kw1);
                ow += 1;
            }
        }
    }
}

int32_t mdy_conv2d_nhwc_s8_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* widened on the fly: no scratch, as the reference */
    return 0;
}
