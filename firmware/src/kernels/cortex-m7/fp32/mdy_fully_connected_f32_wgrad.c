/* Fully connected sparse weight gradient: dw_slices[k][o] += dy[o] * x_vals[k]
 * for the selected features (one fmaf per element, as the reference: the
 * same bits). Four slices at a time share each load of dy[o..o+3]; every
 * slice element is still loaded, updated and stored once, which bounds this
 * kernel at about 3 instructions per MAC. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

MDY_AI void fc_wgrad_block(const int NK, int32_t out_features, const float *dy,
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

void mdy_fully_connected_f32_wgrad(int32_t in_features, int32_t out_features,
                                   const float *x_vals, const uint16_t *sel, int32_t n_sel,
                                   const float *dy, float *dw_slices)
{
    float *dw[4];
    float xv[4];
    int32_t k;
    int n = 0;
    for (k = 0; k < n_sel; ++k) {
        if ((int32_t)sel[k] >= in_features)
            continue; /* never act on a feature the layer does not have */
        dw[n] = dw_slices + (size_t)k * out_features;
        xv[n] = x_vals[k];
        if (++n == 4) {
            fc_wgrad_block(4, out_features, dy, dw, xv);
            n = 0;
        }
    }
    for (k = 0; k < n; ++k)
        fc_wgrad_block(1, out_features, dy, dw + k, xv + k);
}
