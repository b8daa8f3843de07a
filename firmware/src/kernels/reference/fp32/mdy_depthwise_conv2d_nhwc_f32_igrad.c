/* Depthwise conv 2D input gradient: input channel c collects the gradient of
 * its m output channels c*m .. c*m+m-1. */
#include <math.h>

#include "medyate.h"

void mdy_depthwise_conv2d_nhwc_f32_igrad(const mdy_conv_params *p, const float *w,
                                         const float *dy, float *dx, int accumulate)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t m = out_c / in_c;
    int32_t oh, ow, o, kh, kw;

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
