/* Per-channel multiply, gradient of x: dx[hw][c] = dy[hw][c] * s[c].
 * dx may alias dy. */
#include "medyate.h"

void mdy_mul_channel_nhwc_f32_igrad_x(int32_t hw, int32_t c, const float *s,
                                      const float *dy, float *dx, int accumulate)
{
    int32_t p, k;
    for (p = 0; p < hw; ++p) {
        for (k = 0; k < c; ++k) {
            const size_t i = (size_t)p * c + k;
            const float g = dy[i] * s[k];
            dx[i] = accumulate ? dx[i] + g : g;
        }
    }
}
