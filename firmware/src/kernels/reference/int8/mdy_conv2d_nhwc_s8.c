/* Conv 2D forward, int8, NHWC, groups == 1, weights int8 OHWI (symmetric),
 * per-output-channel requantization. Reference loops: the accumulator is
 * bias + sum (x - x_zero) * w over in-range taps; a padded tap is real 0,
 * i.e. the input zero point, and contributes nothing. */
#include "medyate.h"
#include "mdy_requantize.h"

void mdy_conv2d_nhwc_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                        const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y)
{
    const int32_t in_c = p->in_c, out_c = p->out_c, x_zero = q->x_zero;
    int32_t oh, ow, o, kh, kw, i;

    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            int8_t *yp = y + ((size_t)oh * p->out_w + ow) * out_c;
            for (o = 0; o < out_c; ++o) {
                int32_t acc = bias ? bias[o] : 0;
                for (kh = 0; kh < p->k_h; ++kh) {
                    const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                    if (ih < 0 || ih >= p->in_h)
                        continue;
                    for (kw = 0; kw < p->k_w; ++kw) {
                        const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                        const int8_t *xp, *wp;
                        if (iw < 0 || iw >= p->in_w)
                            continue;
                        xp = x + ((size_t)ih * p->in_w + iw) * in_c;
                        wp = w + (((size_t)o * p->k_h + kh) * p->k_w + kw) * in_c;
                        for (i = 0; i < in_c; ++i)
                            acc += ((int32_t)xp[i] - x_zero) * (int32_t)wp[i];
                    }
                }
                acc = mdy_requantize(acc, q->multiplier[o], q->shift[o]) + q->y_zero;
                yp[o] = mdy_clamp_s8(acc, q->act_min, q->act_max);
            }
        }
    }
}

int32_t mdy_conv2d_nhwc_s8_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* the reference kernel works directly on its operands; an
                im2col kernel replacing it reports its column buffer here */
    return 0;
}
