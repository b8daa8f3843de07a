/* HardSwish input gradient from the saved int8 input: the fp32 kernel's
 * derivative (mdy_hardswish_f32_igrad) at the dequantized input
 * v = (float)(code - x_zero) * x_scale, the same expressions in the same
 * order, so it equals the fp32 kernel on mdy_dequantize_s8_f32's output bit
 * for bit. dx may alias dy. */
#include "medyate.h"

void mdy_hardswish_s8_igrad(int32_t n, const int8_t *x, float x_scale, int32_t x_zero,
                            const float *dy, float *dx, int accumulate)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = (float)((int32_t)x[i] - x_zero) * x_scale;
        const float d = v < -3.0f ? 0.0f : (v <= 3.0f ? v * (1.0f / 3.0f) + 0.5f : 1.0f);
        const float g = d * dy[i];
        dx[i] = accumulate ? dx[i] + g : g;
    }
}
