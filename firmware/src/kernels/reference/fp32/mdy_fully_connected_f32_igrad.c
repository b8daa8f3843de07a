/* Fully connected input gradient: dx[i] = sum_o w[o][i] dy[o]. */
#include <math.h>

#include "medyate.h"

void mdy_fully_connected_f32_igrad(int32_t in_features, int32_t out_features,
                                   const float *w, const float *dy, float *dx, int accumulate)
{
    int32_t o, i;
    for (i = 0; i < in_features; ++i) {
        float acc = 0.0f;
        for (o = 0; o < out_features; ++o)
            acc = fmaf(w[(size_t)o * in_features + i], dy[o], acc);
        dx[i] = accumulate ? dx[i] + acc : acc;
    }
}
