/* Conv 2D sparse weight gradient, groups == 1: register-blocked.
 *
 * dW[o][kh][kw][c] for selected channel c = sel[k] sums dy[oh][ow][o] *
 * x_c[ih][iw] over the output positions whose tap (kh, kw) reads inside the
 * map, in raster order, then adds the sum to the slice (as the reference
 * does, so the result is bit-identical). Blocks of NK selected channels x 4
 * output channels keep NK*4 sums in registers: per output position the 4 dy
 * values are loaded once for all NK maps, and each map value once for the 4
 * output channels (NK + 4 loads for 4*NK MACs). */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

/* For tap (kh, kw): accumulate NK maps xm[] x NO output channels starting
 * at o over the valid output rectangle [oh0, oh1) x [ow0, ow1). */
MDY_AI void wgrad_block(const int NK, const int NO, const mdy_conv_params *p,
                        const float *const *xm, float *const *dw, int32_t o,
                        int32_t kh, int32_t kw, int32_t oh0, int32_t oh1,
                        int32_t ow0, int32_t ow1, const float *dy)
{
    const int32_t out_c = p->out_c, sw = p->stride_w;
    const size_t tap = ((size_t)o * p->k_h + kh) * p->k_w + kw;
    const size_t tap_stride = (size_t)p->k_h * p->k_w; /* between output channels */
    float acc[6][4];
    int32_t oh, ow;
    int j, q;

MDY_UNROLL(6)
    for (j = 0; j < NK; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NO; ++q)
            acc[j][q] = 0.0f;
    for (oh = oh0; oh < oh1; ++oh) {
        const int32_t ih = oh * p->stride_h + kh - p->pad_top;
        const float *dyp = dy + ((size_t)oh * p->out_w + ow0) * out_c + o;
        const float *xp[6];
        int32_t n = ow1 - ow0;
MDY_UNROLL(6)
        for (j = 0; j < NK; ++j)
            xp[j] = xm[j] + (size_t)ih * p->in_w + (ow0 * sw + kw - p->pad_left);
        for (ow = 0; ow < n; ++ow) {
            float d[4];
MDY_UNROLL(4)
            for (q = 0; q < NO; ++q)
                d[q] = dyp[q];
MDY_UNROLL(6)
            for (j = 0; j < NK; ++j) {
                const float xv = *xp[j];
                xp[j] += sw;
MDY_UNROLL(4)
                for (q = 0; q < NO; ++q)
                    acc[j][q] = fmaf(d[q], xv, acc[j][q]);
            }
            dyp += out_c;
        }
    }
MDY_UNROLL(6)
    for (j = 0; j < NK; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NO; ++q)
            dw[j][tap + q * tap_stride] += acc[j][q];
}

/* Valid output range [o0, o1) of tap k along one axis. */
static void out_range(int32_t k, int32_t stride, int32_t pad, int32_t in, int32_t out,
                      int32_t *o0, int32_t *o1)
{
    mdy_stride_span(pad - k, in - 1 + pad - k, stride, out, o0, o1); /* o*s + k - pad in [0, in) */
}

MDY_AI void wgrad_channels(const int NK, const mdy_conv_params *p, const float *const *xm,
                           float *const *dw, const float *dy)
{
    int32_t kh, kw, o;
    for (o = 0; o < p->out_c;) {
        const int four = o + 4 <= p->out_c;
        for (kh = 0; kh < p->k_h; ++kh) {
            int32_t oh0, oh1;
            out_range(kh, p->stride_h, p->pad_top, p->in_h, p->out_h, &oh0, &oh1);
            for (kw = 0; kw < p->k_w; ++kw) {
                int32_t ow0, ow1;
                out_range(kw, p->stride_w, p->pad_left, p->in_w, p->out_w, &ow0, &ow1);
                if (four)
                    wgrad_block(NK, 4, p, xm, dw, o, kh, kw, oh0, oh1, ow0, ow1, dy);
                else
                    wgrad_block(NK, 1, p, xm, dw, o, kh, kw, oh0, oh1, ow0, ow1, dy);
            }
        }
        o += four ? 4 : 1;
    }
}

void mdy_conv2d_nhwc_f32_wgrad(const mdy_conv_params *p, const float *x_maps,
                               const uint16_t *sel, int32_t n_sel,
                               const float *dy, float *dw_slices)
{
    const size_t map_size = (size_t)p->in_h * p->in_w;
    const size_t slice_size = (size_t)p->out_c * p->k_h * p->k_w;
    const float *xm[6];
    float *dw[6];
    int32_t k;
    int n = 0;

    /* gather up to 6 valid channels, then run them as one block */
    for (k = 0; k < n_sel; ++k) {
        if ((int32_t)sel[k] >= p->in_c)
            continue; /* never act on a channel the layer does not have */
        xm[n] = x_maps + (size_t)k * map_size;
        dw[n] = dw_slices + (size_t)k * slice_size;
        if (++n == 6) {
            wgrad_channels(6, p, xm, dw, dy);
            n = 0;
        }
    }
    if (n >= 4) {
        wgrad_channels(4, p, xm, dw, dy);
        n -= 4;
        xm[0] = xm[4], xm[1] = xm[5], dw[0] = dw[4], dw[1] = dw[5];
    }
    if (n >= 2) {
        wgrad_channels(2, p, xm, dw, dy);
        n -= 2;
        xm[0] = xm[2], dw[0] = dw[2];
    }
    if (n == 1)
        wgrad_channels(1, p, xm, dw, dy);
}
