/* HardSwish: y = x * clamp(x/6 + 1/2, 0, 1) (ONNX alpha = 1/6, beta = 1/2).
 * x and y may alias. */
#include "medyate.h"

void mdy_hardswish_f32(int32_t n, const float *x, float *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        float s = v * (1.0f / 6.0f) + 0.5f;
        s = s < 0.0f ? 0.0f : (s > 1.0f ? 1.0f : s);
        y[i] = v * s;
    }
}
