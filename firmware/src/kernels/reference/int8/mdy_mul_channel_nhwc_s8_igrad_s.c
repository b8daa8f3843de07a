/* Per-channel multiply, int8 input saved, gradient of the scale:
 * ds[c] = sum_hw dy[hw][c] * x_real[hw][c], x_real = (float)(x - x_zero) *
 * x_scale (the dequantization of mdy_dequantize_s8_f32), summed in the fp32
 * kernel's order with its fmaf, so it equals mdy_mul_channel_nhwc_f32_igrad_s
 * on the dequantized x bit for bit. (Factoring x_scale out of the sum, as the
 * weight gradients do, would round differently.) */
#include <math.h>

#include "medyate.h"

void mdy_mul_channel_nhwc_s8_igrad_s(int32_t hw, int32_t c, const int8_t *x, float x_scale,
                                     int32_t x_zero, const float *dy, float *ds, int accumulate)
{
    int32_t p, k;
    for (k = 0; k < c; ++k) {
        float acc = 0.0f;
        for (p = 0; p < hw; ++p) {
            const size_t i = (size_t)p * c + k;
            const float v = (float)((int32_t)x[i] - x_zero) * x_scale;
            acc = fmaf(dy[i], v, acc);
        }
        ds[k] = accumulate ? ds[k] + acc : acc;
    }
}
