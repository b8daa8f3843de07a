/* Clamp input gradient: dx = dy where the mask bit is set, else 0.
 * dx may alias dy. */
#include "medyate.h"

void mdy_clamp_f32_igrad(int32_t n, const uint8_t *mask, const float *dy, float *dx, int accumulate)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float g = ((mask[i >> 3] >> (i & 7)) & 1u) ? dy[i] : 0.0f;
        dx[i] = accumulate ? dx[i] + g : g;
    }
}
