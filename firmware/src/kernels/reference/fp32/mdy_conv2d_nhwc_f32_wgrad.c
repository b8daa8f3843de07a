/* Conv 2D sparse weight gradient, groups == 1.
 * For selected input channel c = sel[k]: dW[o][kh][kw][c] = sum over output
 * positions of dy[oh][ow][o] * x_c[ih][iw]. The value of c does not enter the
 * arithmetic (x_maps[k] already is channel c's map), so the cost is exactly
 * n_sel * out_c*k_h*k_w*out_h*out_w MACs, independent of in_c. */
#include <math.h>

#include "medyate.h"

void mdy_conv2d_nhwc_f32_wgrad(const mdy_conv_params *p, const float *x_maps,
                               const uint16_t *sel, int32_t n_sel,
                               const float *dy, float *dw_slices)
{
    const int32_t out_c = p->out_c;
    const size_t map_size = (size_t)p->in_h * p->in_w;
    const size_t slice_size = (size_t)out_c * p->k_h * p->k_w;
    int32_t k, o, kh, kw, oh, ow;

    for (k = 0; k < n_sel; ++k) {
        const float *xm = x_maps + (size_t)k * map_size;
        float *dw = dw_slices + (size_t)k * slice_size;
        if ((int32_t)sel[k] >= p->in_c)
            continue; /* never act on a channel the layer does not have */
        for (o = 0; o < out_c; ++o) {
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
                                       xm[(size_t)ih * p->in_w + iw], acc);
                        }
                    }
                    dw[((size_t)o * p->k_h + kh) * p->k_w + kw] += acc;
                }
            }
        }
    }
}
