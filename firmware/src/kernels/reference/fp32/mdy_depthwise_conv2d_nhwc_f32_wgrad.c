/* Depthwise conv 2D sparse weight gradient. The slice of input channel
 * c = sel[k] is W[c*m .. c*m+m-1] ([m][k_h][k_w]); it depends on the saved
 * map of c and on dy of the m output channels c reads into. */
#include <math.h>

#include "medyate.h"

void mdy_depthwise_conv2d_nhwc_f32_wgrad(const mdy_conv_params *p, const float *x_maps,
                                         const uint16_t *sel, int32_t n_sel,
                                         const float *dy, float *dw_slices)
{
    const int32_t out_c = p->out_c;
    const int32_t m = out_c / p->in_c;
    const size_t map_size = (size_t)p->in_h * p->in_w;
    const size_t slice_size = (size_t)m * p->k_h * p->k_w;
    int32_t k, j, kh, kw, oh, ow;

    for (k = 0; k < n_sel; ++k) {
        const int32_t c = sel[k];
        const float *xm = x_maps + (size_t)k * map_size;
        float *dw = dw_slices + (size_t)k * slice_size;
        if (c >= p->in_c)
            continue; /* an out-of-range channel would index dy out of bounds */
        for (j = 0; j < m; ++j) {
            const int32_t o = c * m + j;
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
                    dw[((size_t)j * p->k_h + kh) * p->k_w + kw] += acc;
                }
            }
        }
    }
}
