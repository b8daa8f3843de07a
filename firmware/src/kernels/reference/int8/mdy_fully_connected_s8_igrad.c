/* Fully connected input gradient through a frozen int8 layer, fp32, real
 * units: dx[i] = sum_o dy[o] * w_scale[o] * w_code[o][i]. */
#include <math.h>

#include "medyate.h"

void mdy_fully_connected_s8_igrad(int32_t in_features, int32_t out_features,
                                  const int8_t *w, const float *w_scales, const float *dy,
                                  float *dx, int accumulate)
{
    int32_t o, i;
    if (!accumulate)
        for (i = 0; i < in_features; ++i)
            dx[i] = 0.0f;
    for (o = 0; o < out_features; ++o) {
        const float g = dy[o] * w_scales[o];
        const int8_t *wo = w + (size_t)o * in_features;
        for (i = 0; i < in_features; ++i)
            dx[i] = fmaf(g, (float)wo[i], dx[i]);
    }
}
