/* Conv 2D sparse weight gradient from int8 saved maps, groups == 1.
 * Training on the int8 graph (docs/ALGORITHM.md) saves the selected input
 * channels' maps as the forward's int8 codes (1 byte per element instead of
 * 4) and computes the gradient in fp32, in real units:
 *   dW[o][kh][kw][c] += x_scale * sum dy[oh][ow][o] * (x_c[ih][iw] - x_zero)
 * for c = sel[k], x_maps[k] its channel-planar map. Same loops and cost as
 * mdy_conv2d_nhwc_f32_wgrad; the code minus zero point is exact in fp32 and
 * the scale is applied once per weight, not per MAC. */
#include <math.h>

#include "medyate.h"

void mdy_conv2d_nhwc_s8_wgrad(const mdy_conv_params *p, const int8_t *x_maps,
                              int32_t x_zero, float x_scale, const uint16_t *sel,
                              int32_t n_sel, const float *dy, float *dw_slices)
{
    const int32_t out_c = p->out_c;
    const size_t map_size = (size_t)p->in_h * p->in_w;
    const size_t slice_size = (size_t)out_c * p->k_h * p->k_w;
    int32_t k, o, kh, kw, oh, ow;

    for (k = 0; k < n_sel; ++k) {
        const int8_t *xm = x_maps + (size_t)k * map_size;
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
                                       (float)((int32_t)xm[(size_t)ih * p->in_w + iw] - x_zero),
                                       acc);
                        }
                    }
                    dw[((size_t)o * p->k_h + kh) * p->k_w + kw] =
                        fmaf(x_scale, acc, dw[((size_t)o * p->k_h + kh) * p->k_w + kw]);
                }
            }
        }
    }
}
