/* HardSigmoid input gradient: dx = alpha * dy in the linear region (mask bit
 * set), else 0. dx may alias dy. */
#include "medyate.h"

void mdy_hardsigmoid_f32_igrad(int32_t n, const uint8_t *mask, float alpha,
                               const float *dy, float *dx, int accumulate)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float g = ((mask[i >> 3] >> (i & 7)) & 1u) ? alpha * dy[i] : 0.0f;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}
