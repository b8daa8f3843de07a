/* Clamp (ReLU, ReLU6, Clip): y = min(max(x, lo), hi). The optional mask gets
 * bit i (mask[i>>3] bit i&7) set where lo < x[i] < hi, the region where the
 * derivative is 1; bits past n in the last byte are 0. x and y may alias:
 * each element is read before it is written. */
#include "medyate.h"

void mdy_clamp_f32(int32_t n, const float *x, float lo, float hi, float *y, uint8_t *mask)
{
    int32_t i;
    uint8_t byte = 0;
    for (i = 0; i < n; ++i) {
        const float v = x[i];
        if (v > lo && v < hi)
            byte = (uint8_t)(byte | (1u << (i & 7)));
        y[i] = v < lo ? lo : (v > hi ? hi : v);
        if ((i & 7) == 7 || i == n - 1) {
            if (mask)
                mask[i >> 3] = byte;
            byte = 0;
        }
    }
}
