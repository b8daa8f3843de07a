/* Fully connected sparse weight gradient from int8 saved inputs:
 * dw_slices[k][o] += dy[o] * x_scale * (x_vals[k] - x_zero), x_vals[k] the
 * saved code of input sel[k]. */
#include <math.h>

#include "medyate.h"

void mdy_fully_connected_s8_wgrad(int32_t in_features, int32_t out_features,
                                  const int8_t *x_vals, int32_t x_zero, float x_scale,
                                  const uint16_t *sel, int32_t n_sel, const float *dy,
                                  float *dw_slices)
{
    int32_t k, o;
    for (k = 0; k < n_sel; ++k) {
        const float xv = x_scale * (float)((int32_t)x_vals[k] - x_zero);
        float *dw = dw_slices + (size_t)k * out_features;
        if ((int32_t)sel[k] >= in_features)
            continue;
        for (o = 0; o < out_features; ++o)
            dw[o] = fmaf(dy[o], xv, dw[o]);
    }
}
