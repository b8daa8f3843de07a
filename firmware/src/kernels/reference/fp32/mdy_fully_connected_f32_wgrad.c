/* Fully connected sparse weight gradient: the slice of input feature
 * i = sel[k] is the column W[:, i] (out_features floats):
 * dw_slices[k][o] += dy[o] * x_vals[k]. Always accumulates. */
#include <math.h>

#include "medyate.h"

void mdy_fully_connected_f32_wgrad(int32_t in_features, int32_t out_features,
                                   const float *x_vals, const uint16_t *sel, int32_t n_sel,
                                   const float *dy, float *dw_slices)
{
    int32_t k, o;
    for (k = 0; k < n_sel; ++k) {
        float *dw = dw_slices + (size_t)k * out_features;
        const float xv = x_vals[k];
        if ((int32_t)sel[k] >= in_features)
            continue; /* never act on a feature the layer does not have */
        for (o = 0; o < out_features; ++o)
            dw[o] = fmaf(dy[o], xv, dw[o]);
    }
}
