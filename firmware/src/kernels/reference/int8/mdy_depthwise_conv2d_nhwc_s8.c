/* Depthwise conv 2D forward, int8, NHWC, groups == in_c, channel multiplier
 * m = out_c / in_c: output channel o reads input channel o / m, weights
 * [out_c][k_h][k_w] int8 (symmetric), per-output-channel requantization. */
#include "medyate.h"
#include "mdy_requantize.h"

void mdy_depthwise_conv2d_nhwc_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                                  const int8_t *x, const int8_t *w, const int32_t *bias,
                                  int8_t *y)
{
    const int32_t in_c = p->in_c, out_c = p->out_c, m = out_c / in_c, x_zero = q->x_zero;
    int32_t oh, ow, o, kh, kw;

    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            int8_t *yp = y + ((size_t)oh * p->out_w + ow) * out_c;
            for (o = 0; o < out_c; ++o) {
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
                acc = mdy_requantize(acc, q->multiplier[o], q->shift[o]) + q->y_zero;
                yp[o] = mdy_clamp_s8(acc, q->act_min, q->act_max);
            }
        }
    }
}

int32_t mdy_depthwise_conv2d_nhwc_s8_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* the reference kernel needs no scratch */
    return 0;
}
