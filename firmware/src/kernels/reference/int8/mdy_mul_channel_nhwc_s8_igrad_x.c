/* Per-channel multiply, int8 scale saved, gradient of x: dx[hw][c] =
 * dy[hw][c] * s_real[c], s_real = (float)(s - s_zero) * s_scale (the
 * dequantization of mdy_dequantize_s8_f32), so it equals
 * mdy_mul_channel_nhwc_f32_igrad_x on the dequantized s bit for bit.
 * dx may alias dy. */
#include "medyate.h"

void mdy_mul_channel_nhwc_s8_igrad_x(int32_t hw, int32_t c, const int8_t *s, float s_scale,
                                     int32_t s_zero, const float *dy, float *dx, int accumulate)
{
    int32_t p, k;
    for (p = 0; p < hw; ++p) {
        for (k = 0; k < c; ++k) {
            const size_t i = (size_t)p * c + k;
            const float sk = (float)((int32_t)s[k] - s_zero) * s_scale;
            const float g = dy[i] * sk;
            dx[i] = accumulate ? dx[i] + g : g;
        }
    }
}
