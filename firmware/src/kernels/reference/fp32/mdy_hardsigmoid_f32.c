/* HardSigmoid: y = clamp(alpha*x + beta, 0, 1). The optional mask gets bit i
 * set in the linear region 0 < alpha*x + beta < 1 (derivative alpha), bits past
 * n in the last byte are 0. x and y may alias. */
#include "medyate.h"

void mdy_hardsigmoid_f32(int32_t n, const float *x, float alpha, float beta, float *y, uint8_t *mask)
{
    int32_t i;
    uint8_t byte = 0;
    for (i = 0; i < n; ++i) {
        const float v = alpha * x[i] + beta;
        if (v > 0.0f && v < 1.0f)
            byte = (uint8_t)(byte | (1u << (i & 7)));
        y[i] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
        if ((i & 7) == 7 || i == n - 1) {
            if (mask)
                mask[i >> 3] = byte;
            byte = 0;
        }
    }
}
