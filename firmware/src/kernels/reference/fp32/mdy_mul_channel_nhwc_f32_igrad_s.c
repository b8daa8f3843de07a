/* Per-channel multiply, gradient of the scale: ds[c] = sum_hw dy[hw][c] * x[hw][c]. */
#include <math.h>

#include "medyate.h"

void mdy_mul_channel_nhwc_f32_igrad_s(int32_t hw, int32_t c, const float *x,
                                      const float *dy, float *ds, int accumulate)
{
    int32_t p, k;
    for (k = 0; k < c; ++k) {
        float acc = 0.0f;
        for (p = 0; p < hw; ++p)
            acc = fmaf(dy[(size_t)p * c + k], x[(size_t)p * c + k], acc);
        ds[k] = accumulate ? ds[k] + acc : acc;
    }
}
