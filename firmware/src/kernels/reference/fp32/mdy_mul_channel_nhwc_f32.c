/* Per-channel multiply (squeeze-excite): y[hw][c] = x[hw][c] * s[c].
 * y may alias x. */
#include "medyate.h"

void mdy_mul_channel_nhwc_f32(int32_t hw, int32_t c, const float *x, const float *s, float *y)
{
    int32_t p, k;
    for (p = 0; p < hw; ++p)
        for (k = 0; k < c; ++k)
            y[(size_t)p * c + k] = x[(size_t)p * c + k] * s[k];
}
