/* Fully connected, int8: y[o] = requantize(bias[o] + sum_i (x[i] - x_zero) w[o][i]),
 * per-output-channel requantization (a 1x1 conv on a 1x1 map). */
#include "medyate.h"
#include "mdy_requantize.h"

void mdy_fully_connected_s8(int32_t in_features, int32_t out_features,
                            const mdy_s8_conv_quant *q, const int8_t *x, const int8_t *w,
                            const int32_t *bias, int8_t *y)
{
    int32_t o, i;
    for (o = 0; o < out_features; ++o) {
        const int8_t *wo = w + (size_t)o * in_features;
        int32_t acc = bias ? bias[o] : 0;
        for (i = 0; i < in_features; ++i)
            acc += ((int32_t)x[i] - q->x_zero) * (int32_t)wo[i];
        acc = mdy_requantize(acc, q->multiplier[o], q->shift[o]) + q->y_zero;
        y[o] = mdy_clamp_s8(acc, q->act_min, q->act_max);
    }
}
