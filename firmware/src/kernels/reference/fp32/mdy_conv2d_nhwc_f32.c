/* Conv 2D forward, NHWC, groups == 1, weights OHWI. Reference loops. */
#include <math.h>

#include "medyate.h"

void mdy_conv2d_nhwc_f32(const mdy_conv_params *p, const float *x,
                         const float *w, const float *bias, float *y)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    int32_t oh, ow, o, kh, kw, i;

    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            float *yp = y + ((size_t)oh * p->out_w + ow) * out_c;
            for (o = 0; o < out_c; ++o) {
                float acc = bias ? bias[o] : 0.0f;
                for (kh = 0; kh < p->k_h; ++kh) {
                    const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                    if (ih < 0 || ih >= p->in_h)
                        continue; /* zero padding contributes nothing */
                    for (kw = 0; kw < p->k_w; ++kw) {
                        const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                        const float *xp, *wp;
                        if (iw < 0 || iw >= p->in_w)
                            continue;
                        xp = x + ((size_t)ih * p->in_w + iw) * in_c;
                        wp = w + (((size_t)o * p->k_h + kh) * p->k_w + kw) * in_c;
                        for (i = 0; i < in_c; ++i)
                            acc = fmaf(xp[i], wp[i], acc);
                    }
                }
                yp[o] = acc;
            }
        }
    }
}

int32_t mdy_conv2d_nhwc_f32_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* the reference kernel works directly on its operands */
    return 0;
}
