/* Fully connected: y[o] = sum_i w[o][i] x[i] + b[o]; w is [out][in]. */
#include <math.h>

#include "medyate.h"

void mdy_fully_connected_f32(int32_t in_features, int32_t out_features,
                             const float *x, const float *w, const float *bias, float *y)
{
    int32_t o, i;
    for (o = 0; o < out_features; ++o) {
        const float *wp = w + (size_t)o * in_features;
        float acc = bias ? bias[o] : 0.0f;
        for (i = 0; i < in_features; ++i)
            acc = fmaf(wp[i], x[i], acc);
        y[o] = acc;
    }
}
