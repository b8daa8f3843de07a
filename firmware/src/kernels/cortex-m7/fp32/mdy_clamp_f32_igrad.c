/* Clamp input gradient: dx = dy where the mask bit is set, else 0, eight
 * elements per mask byte read once (the reference reloads and shifts the
 * byte per element). The selected value and the sum are the reference's:
 * g is dy or +0.0f, and with accumulate dx + g is computed even for g = +0
 * (which turns a -0 into +0, as the reference does). dx may alias dy. */
#include <string.h>

#include "medyate.h"
#include "mdy_blocking.h"

MDY_AI void eight(const int ACC, uint32_t byte, const float *dy, float *dx, int32_t n)
{
    int k;
MDY_UNROLL(8)
    for (k = 0; k < 8; ++k) {
        if (k < n) {
            if (ACC) {
                const float g = (byte >> k) & 1u ? dy[k] : 0.0f;
                dx[k] = dx[k] + g;
            } else {
                /* dy's bits where the bit is set, else +0.0f's (all zero):
                 * an AND with the bit spread over the word, no FPU */
                uint32_t v;
                memcpy(&v, &dy[k], sizeof v);
                v &= 0u - ((byte >> k) & 1u);
                memcpy(&dx[k], &v, sizeof v);
            }
        }
    }
}

void mdy_clamp_f32_igrad(int32_t n, const uint8_t *mask, const float *dy, float *dx, int accumulate)
{
    int32_t i = 0;
    if (accumulate) {
        for (; i + 8 <= n; i += 8)
            eight(1, mask[i >> 3], dy + i, dx + i, 8);
        if (i < n)
            eight(1, mask[i >> 3], dy + i, dx + i, n - i);
    } else {
        for (; i + 8 <= n; i += 8)
            eight(0, mask[i >> 3], dy + i, dx + i, 8);
        if (i < n)
            eight(0, mask[i >> 3], dy + i, dx + i, n - i);
    }
}
