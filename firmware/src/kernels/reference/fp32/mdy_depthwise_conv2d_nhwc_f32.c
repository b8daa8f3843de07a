/* Depthwise conv 2D forward, NHWC. Channel multiplier m = out_c / in_c:
 * output channel o reads input channel o / m. Weights [out_c][k_h][k_w]
 * (OHWI with I = 1). */
#include <math.h>

#include "medyate.h"

void mdy_depthwise_conv2d_nhwc_f32(const mdy_conv_params *p, const float *x,
                                   const float *w, const float *bias, float *y)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t m = out_c / in_c;
    int32_t oh, ow, o, kh, kw;

    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            float *yp = y + ((size_t)oh * p->out_w + ow) * out_c;
            for (o = 0; o < out_c; ++o) {
                const int32_t c = o / m;
                float acc = bias ? bias[o] : 0.0f;
                for (kh = 0; kh < p->k_h; ++kh) {
                    const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                    if (ih < 0 || ih >= p->in_h)
                        continue;
                    for (kw = 0; kw < p->k_w; ++kw) {
                        const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                        if (iw < 0 || iw >= p->in_w)
                            continue;
                        acc = fmaf(x[((size_t)ih * p->in_w + iw) * in_c + c],
                                   w[((size_t)o * p->k_h + kh) * p->k_w + kw], acc);
                    }
                }
                yp[o] = acc;
            }
        }
    }
}

int32_t mdy_depthwise_conv2d_nhwc_f32_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* the reference kernel works directly on its operands */
    return 0;
}
