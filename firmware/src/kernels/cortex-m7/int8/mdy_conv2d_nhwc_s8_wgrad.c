/* Conv 2D sparse weight gradient from int8 saved maps, groups == 1:
 * register-blocked, the blocking of ../fp32/mdy_conv2d_nhwc_f32_wgrad.c.
 *
 * dW[o][kh][kw][c] for selected channel c = sel[k] sums dy[oh][ow][o] *
 * (float)(x_c[ih][iw] - x_zero) over the output positions whose tap (kh, kw)
 * reads inside the map, in raster order, then adds x_scale times the sum to
 * the slice with one fmaf (as the reference does, so the result is
 * bit-identical). Blocks of NK <= 4 selected channels x NO <= 6 output
 * channels keep their sums in registers: per output position the NO dy
 * values are loaded once for the NK maps, and each map code is converted to
 * float once for the NO output channels (the conversion, 4 instructions, is
 * what an int8 map adds to the fp32 kernel, so NO is the larger side here). */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "../fp32/mdy_blocking.h"

/* For tap (kh, kw): accumulate NK maps xm[] x NO output channels starting
 * at o over the valid output rectangle [oh0, oh1) x [ow0, ow1). */
MDY_AI void wgrad_block(const int NK, const int NO, const mdy_conv_params *p,
                        const int8_t *const *xm, int32_t x_zero, float x_scale,
                        float *const *dw, int32_t o, int32_t kh, int32_t kw, int32_t oh0,
                        int32_t oh1, int32_t ow0, int32_t ow1, const float *dy)
{
    const int32_t out_c = p->out_c, sw = p->stride_w;
    const size_t tap = ((size_t)o * p->k_h + kh) * p->k_w + kw;
    const size_t tap_stride = (size_t)p->k_h * p->k_w; /* between output channels */
    float acc[4][6];
    int32_t oh, ow;
    int j, q;

MDY_UNROLL(4)
    for (j = 0; j < NK; ++j)
MDY_UNROLL(6)
        for (q = 0; q < NO; ++q)
            acc[j][q] = 0.0f;
    for (oh = oh0; oh < oh1; ++oh) {
        const int32_t ih = oh * p->stride_h + kh - p->pad_top;
        const float *dyp = dy + ((size_t)oh * p->out_w + ow0) * out_c + o;
        const int8_t *xp[4];
        int32_t n = ow1 - ow0;
MDY_UNROLL(4)
        for (j = 0; j < NK; ++j)
            xp[j] = xm[j] + (size_t)ih * p->in_w + (ow0 * sw + kw - p->pad_left);
        for (ow = 0; ow < n; ++ow) {
            float d[6];
MDY_UNROLL(6)
            for (q = 0; q < NO; ++q)
                d[q] = dyp[q];
MDY_UNROLL(4)
            for (j = 0; j < NK; ++j) {
                const float xv = (float)((int32_t)*xp[j] - x_zero);
                xp[j] += sw;
MDY_UNROLL(6)
                for (q = 0; q < NO; ++q)
                    acc[j][q] = fmaf(d[q], xv, acc[j][q]);
            }
            dyp += out_c;
        }
    }
MDY_UNROLL(4)
    for (j = 0; j < NK; ++j)
MDY_UNROLL(6)
        for (q = 0; q < NO; ++q)
            dw[j][tap + q * tap_stride] = fmaf(x_scale, acc[j][q], dw[j][tap + q * tap_stride]);
}

/* Valid output range [o0, o1) of tap k along one axis. */
static void out_range(int32_t k, int32_t stride, int32_t pad, int32_t in, int32_t out,
                      int32_t *o0, int32_t *o1)
{
    mdy_stride_span(pad - k, in - 1 + pad - k, stride, out, o0, o1); /* o*s + k - pad in [0, in) */
}

/* One tap's blocks over NO output channels from o, then the next tap. */
MDY_AI void wgrad_taps(const int NK, const int NO, const mdy_conv_params *p,
                       const int8_t *const *xm, int32_t x_zero, float x_scale,
                       float *const *dw, int32_t o, const float *dy)
{
    int32_t kh, kw;
    for (kh = 0; kh < p->k_h; ++kh) {
        int32_t oh0, oh1;
        out_range(kh, p->stride_h, p->pad_top, p->in_h, p->out_h, &oh0, &oh1);
        for (kw = 0; kw < p->k_w; ++kw) {
            int32_t ow0, ow1;
            out_range(kw, p->stride_w, p->pad_left, p->in_w, p->out_w, &ow0, &ow1);
            wgrad_block(NK, NO, p, xm, x_zero, x_scale, dw, o, kh, kw, oh0, oh1, ow0, ow1,
                        dy);
        }
    }
}

MDY_AI void wgrad_channels(const int NK, const mdy_conv_params *p, const int8_t *const *xm,
                           int32_t x_zero, float x_scale, float *const *dw, const float *dy)
{
    int32_t o = 0;
    for (; o + 6 <= p->out_c; o += 6)
        wgrad_taps(NK, 6, p, xm, x_zero, x_scale, dw, o, dy);
    if (o + 4 <= p->out_c) {
        wgrad_taps(NK, 4, p, xm, x_zero, x_scale, dw, o, dy);
        o += 4;
    }
    if (o + 2 <= p->out_c) {
        wgrad_taps(NK, 2, p, xm, x_zero, x_scale, dw, o, dy);
        o += 2;
    }
    if (o < p->out_c)
        wgrad_taps(NK, 1, p, xm, x_zero, x_scale, dw, o, dy);
}

void mdy_conv2d_nhwc_s8_wgrad(const mdy_conv_params *p, const int8_t *x_maps,
                              int32_t x_zero, float x_scale, const uint16_t *sel,
                              int32_t n_sel, const float *dy, float *dw_slices)
{
    const size_t map_size = (size_t)p->in_h * p->in_w;
    const size_t slice_size = (size_t)p->out_c * p->k_h * p->k_w;
    const int8_t *xm[4];
    float *dw[4];
    int32_t k;
    int n = 0;

    /* gather up to 4 valid channels, then run them as one block */
    for (k = 0; k < n_sel; ++k) {
        if ((int32_t)sel[k] >= p->in_c)
            continue; /* never act on a channel the layer does not have */
        xm[n] = x_maps + (size_t)k * map_size;
        dw[n] = dw_slices + (size_t)k * slice_size;
        if (++n == 4) {
            wgrad_channels(4, p, xm, x_zero, x_scale, dw, dy);
            n = 0;
        }
    }
    if (n >= 2) {
        wgrad_channels(2, p, xm, x_zero, x_scale, dw, dy);
        n -= 2;
        xm[0] = xm[2], dw[0] = dw[2];
    }
    if (n == 1)
        wgrad_channels(1, p, xm, x_zero, x_scale, dw, dy);
}
