/* The int8 clamp's backward state: bit i (mask[i>>3] bit i&7) set where
 * act_min < y[i] < act_max, i.e. where the int8 output was not clamped and
 * the gradient passes straight through (TTE's rule). One bit per element,
 * read from the output codes after the forward, so the int8 kernels need no
 * mask argument; mdy_clamp_f32_igrad applies it to the fp32 gradient. Bits
 * past n in the last byte are 0. */
#include "medyate.h"

void mdy_clamp_mask_s8(int32_t n, const int8_t *y, int32_t act_min, int32_t act_max,
                       uint8_t *mask)
{
    int32_t i;
    uint8_t byte = 0;
    for (i = 0; i < n; ++i) {
        if (y[i] > act_min && y[i] < act_max)
            byte = (uint8_t)(byte | (1u << (i & 7)));
        if ((i & 7) == 7 || i == n - 1) {
            mask[i >> 3] = byte;
            byte = 0;
        }
    }
}
