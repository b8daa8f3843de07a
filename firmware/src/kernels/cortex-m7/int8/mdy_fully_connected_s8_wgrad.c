/* Fully connected sparse weight gradient from int8 saved inputs:
 * dw_slices[k][o] += dy[o] * xv[k], xv[k] = x_scale * (x_vals[k] - x_zero)
 * (rounded once per slice, as the reference does), one fmaf per element: the
 * same bits. The int8 code enters once per slice, so this is the fp32
 * kernel's blocking (../fp32/mdy_fully_connected_f32_wgrad.c): four slices
 * share each load of dy[o..o+3]; every slice element is still loaded, updated
 * and stored once. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "../fp32/mdy_blocking.h"

MDY_AI void wgrad_block(const int NK, int32_t out_features, const float *dy,
                        float *const *dw, const float *xv)
{
    float *dp[4];
    float x[4];
    int32_t o;
    int j, q;
    MDY_UNROLL(4)
    for (j = 0; j < NK; ++j) {
        dp[j] = dw[j];
        x[j] = xv[j];
    }
    for (o = 0; o + 4 <= out_features; o += 4) {
        float d[4];
        MDY_UNROLL(4)
        for (q = 0; q < 4; ++q)
            d[q] = dy[o + q];
        MDY_UNROLL(4)
        for (j = 0; j < NK; ++j) {
            MDY_UNROLL(4)
            for (q = 0; q < 4; ++q)
                dp[j][q] = fmaf(d[q], x[j], dp[j][q]);
            dp[j] += 4;
        }
    }
    for (; o < out_features; ++o) {
        const float d = dy[o];
        MDY_UNROLL(4)
        for (j = 0; j < NK; ++j) {
            *dp[j] = fmaf(d, x[j], *dp[j]);
            ++dp[j];
        }
    }
}

void mdy_fully_connected_s8_wgrad(int32_t in_features, int32_t out_features,
                                  const int8_t *x_vals, int32_t x_zero, float x_scale,
                                  const uint16_t *sel, int32_t n_sel, const float *dy,
                                  float *dw_slices)
{
    float *dw[4];
    float xv[4];
    int32_t k;
    int n = 0;
    for (k = 0; k < n_sel; ++k) {
        if ((int32_t)sel[k] >= in_features)
            continue; /* never act on a feature the layer does not have */
        dw[n] = dw_slices + (size_t)k * out_features;
        xv[n] = x_scale * (float)((int32_t)x_vals[k] - x_zero);
        if (++n == 4) {
            wgrad_block(4, out_features, dy, dw, xv);
            n = 0;
        }
    }
    for (k = 0; k < n; ++k)
        wgrad_block(1, out_features, dy, dw + k, xv + k);
}
