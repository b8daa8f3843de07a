/* Fully connected input gradient through a frozen int8 layer, fp32, real
 * units: dx[i] = sum_o dy[o] * w_scale[o] * w_code[o][i], register-blocked
 * over 16 inputs as ../fp32/mdy_fully_connected_f32_igrad.c: g = dy[o] *
 * w_scale[o] (rounded once, as the reference does) serves 16 adjacent codes of
 * row o (byte loads at immediate offsets from one pointer), each converted to
 * float once (LDRSB, VMOV, VCVT) for its one VFMA. Each input starts from dx
 * (when accumulating) or zero and takes the terms o = 0.. in the reference's
 * order with one fmaf per term: bit-identical. dx is loaded and stored once
 * per input instead of once per term. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "../fp32/mdy_blocking.h"

MDY_AI void igrad_block(const int NI, int32_t in_features, int32_t out_features,
                        const int8_t *w0, const float *w_scales, const float *dy, float *dx,
                        int accumulate)
{
    float acc[16];
    const int8_t *wp = w0;
    int32_t o;
    int q;
    MDY_UNROLL(16)
    for (q = 0; q < NI; ++q)
        acc[q] = accumulate ? dx[q] : 0.0f;
    for (o = 0; o < out_features; ++o) {
        const float g = dy[o] * w_scales[o];
        MDY_UNROLL(16)
        for (q = 0; q < NI; ++q)
            acc[q] = fmaf(g, (float)wp[q], acc[q]);
        wp += in_features;
    }
    MDY_UNROLL(16)
    for (q = 0; q < NI; ++q)
        dx[q] = acc[q];
}

void mdy_fully_connected_s8_igrad(int32_t in_features, int32_t out_features,
                                  const int8_t *w, const float *w_scales, const float *dy,
                                  float *dx, int accumulate)
{
    int32_t i = 0;
    for (; i + 16 <= in_features; i += 16)
        igrad_block(16, in_features, out_features, w + i, w_scales, dy, dx + i, accumulate);
    if (i + 8 <= in_features) {
        igrad_block(8, in_features, out_features, w + i, w_scales, dy, dx + i, accumulate);
        i += 8;
    }
    if (i + 4 <= in_features) {
        igrad_block(4, in_features, out_features, w + i, w_scales, dy, dx + i, accumulate);
        i += 4;
    }
    for (; i < in_features; ++i)
        igrad_block(1, in_features, out_features, w + i, w_scales, dy, dx + i, accumulate);
}
