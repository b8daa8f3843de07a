/* HardSwish input gradient from the saved x:
 * d/dx = 0 for x < -3, x/3 + 1/2 for -3 <= x <= 3, 1 for x > 3
 * (the same one-sided choice at the kinks as PyTorch). dx may alias dy. */
#include "medyate.h"

void mdy_hardswish_f32_igrad(int32_t n, const float *x, const float *dy, float *dx, int accumulate)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        const float d = v < -3.0f ? 0.0f : (v <= 3.0f ? v * (1.0f / 3.0f) + 0.5f : 1.0f);
        const float g = d * dy[i];
        dx[i] = accumulate ? dx[i] + g : g;
    }
}
