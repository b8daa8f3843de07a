/* Depthwise conv 2D forward, int8, NHWC, Cortex-M7: the reference's
 * accumulators (bias + sum over in-range taps of (x - x_zero) w), bit-identical
 * to ../../reference/int8/.
 *
 * Channel multiplier 1, the MobileNet case: 4 channels at a time. One word
 * of x holds the 4 channels of a tap; SXTAB16 widens it, with the zero point
 * subtracted, into the lanes (c, c+2) and (c+1, c+3). The weights
 * [out_c][k_h][k_w] are channel-major, so the group's weights are packed once
 * into the same lane pairs, tap by tap, in a small array on the stack (at most
 * MAX_TAPS taps: 8 bytes each); per tap and output position that is one LDR
 * of x, three widening instructions, two LDR of packed weights and four
 * 16 x 16 MACs (SMLABB / SMLATT, one lane each). Leftover channels, larger
 * kernels and multipliers above 1 run the reference loops. No scratch. */
#include "medyate.h"
#include "mdy_s8_dsp.h"

#define MAX_TAPS 25 /* up to 5x5 */

/* The reference loops for output channels [o0, o1). */
static void channels_plain(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                           const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y,
                           int32_t o0, int32_t o1)
{
    const int32_t in_c = p->in_c, out_c = p->out_c, m = out_c / in_c, x_zero = q->x_zero;
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
                yp[o] = mdy_output_s8(acc, q->multiplier[o], q->shift[o], q->y_zero,
                                      q->act_min, q->act_max);
            }
        }
    }
}

/* Channels c..c+3 (multiplier 1, k_h * k_w <= MAX_TAPS). */
static void channels_4(const mdy_conv_params *p, const mdy_s8_conv_quant *q, const int8_t *x,
                       const int8_t *w, const int32_t *bias, int8_t *y, int32_t c)
{
    const int32_t in_c = p->in_c, taps = p->k_h * p->k_w;
    const mdy_s16x2 off = mdy_s16x2_dup(-q->x_zero);
    const size_t x_row = (size_t)p->in_w * in_c;
    mdy_s16x2 wk[MAX_TAPS][2]; /* (w[c][t], w[c+2][t]), (w[c+1][t], w[c+3][t]) */
    int32_t b[4], mult[4], shift[4];
    int32_t t, j, oh, ow, kh, kw;
    for (t = 0; t < taps; ++t) {
        wk[t][0] = mdy_pack16(w[(size_t)c * taps + t], w[(size_t)(c + 2) * taps + t]);
        wk[t][1] = mdy_pack16(w[(size_t)(c + 1) * taps + t], w[(size_t)(c + 3) * taps + t]);
    }
    for (j = 0; j < 4; ++j) {
        b[j] = bias ? bias[c + j] : 0;
        mult[j] = q->multiplier[c + j];
        shift[j] = q->shift[c + j];
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        const int32_t ih0 = oh * p->stride_h - p->pad_top;
        const int32_t kh0 = ih0 < 0 ? -ih0 : 0;
        const int32_t kh1 = p->in_h - ih0 < p->k_h ? p->in_h - ih0 : p->k_h;
        for (ow = 0; ow < p->out_w; ++ow) {
            const int32_t iw0 = ow * p->stride_w - p->pad_left;
            const int32_t kw0 = iw0 < 0 ? -iw0 : 0;
            const int32_t kw1 = p->in_w - iw0 < p->k_w ? p->in_w - iw0 : p->k_w;
            int8_t *yp = y + ((size_t)oh * p->out_w + ow) * p->out_c + c;
            int32_t a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];
            for (kh = kh0; kh < kh1; ++kh) {
                const int8_t *xp = x + (size_t)(ih0 + kh) * x_row;
                const mdy_s16x2 *wr = wk[kh * p->k_w];
                for (kw = kw0; kw < kw1; ++kw) {
                    const uint32_t v = mdy_read_s8x4(xp + (size_t)(iw0 + kw) * in_c + c);
                    const mdy_s16x2 xe = mdy_sxtab16(off, v), xo = mdy_sxtab16(off, mdy_ror8(v));
                    a0 = mdy_smlabb(xe, wr[2 * kw], a0);
                    a2 = mdy_smlatt(xe, wr[2 * kw], a2);
                    a1 = mdy_smlabb(xo, wr[2 * kw + 1], a1);
                    a3 = mdy_smlatt(xo, wr[2 * kw + 1], a3);
                }
            }
            yp[0] = mdy_output_s8(a0, mult[0], shift[0], q->y_zero, q->act_min, q->act_max);
            yp[1] = mdy_output_s8(a1, mult[1], shift[1], q->y_zero, q->act_min, q->act_max);
            yp[2] = mdy_output_s8(a2, mult[2], shift[2], q->y_zero, q->act_min, q->act_max);
            yp[3] = mdy_output_s8(a3, mult[3], shift[3], q->y_zero, q->act_min, q->act_max);
        }
    }
}

void mdy_depthwise_conv2d_nhwc_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                                  const int8_t *x, const int8_t *w, const int32_t *bias,
                                  int8_t *y)
{
    int32_t c = 0;
    if (p->out_c == p->in_c && p->k_h * p->k_w <= MAX_TAPS)
        for (; c + 4 <= p->in_c; c += 4)
            channels_4(p, q, x, w, bias, y, c);
    if (c < p->out_c)
        channels_plain(p, q, x, w, bias, y, c, p->out_c);
}

int32_t mdy_depthwise_conv2d_nhwc_s8_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* the packed weights live on the stack (MAX_TAPS * 8 bytes): no scratch */
    return 0;
}
