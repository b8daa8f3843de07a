/* The int8 clamp's backward state (see the reference kernel): bit i set where
 * act_min < y[i] < act_max. Eight codes per mask byte without a branch: the
 * two comparisons are one unsigned one, (y - act_min - 1) < (act_max -
 * act_min - 1), so each bit is a load, a subtraction, a compare and an OR.
 * Integers only: the same bits as the reference. */
#include "medyate.h"
#include "../fp32/mdy_blocking.h"

void mdy_clamp_mask_s8(int32_t n, const int8_t *y, int32_t act_min, int32_t act_max,
                       uint8_t *mask)
{
    const int32_t lo = act_min + 1;
    const uint32_t span = act_max - act_min > 1 ? (uint32_t)(act_max - act_min - 1) : 0u;
    int32_t i, k;
    for (i = 0; i + 8 <= n; i += 8, y += 8) {
        uint32_t byte = 0;
MDY_UNROLL(8)
        for (k = 0; k < 8; ++k)
            byte |= (uint32_t)((uint32_t)(y[k] - lo) < span) << k;
        *mask++ = (uint8_t)byte;
    }
    if (i < n) {   /* the last byte: bits past n stay 0 */
        uint32_t byte = 0;
        for (k = 0; i + k < n; ++k)
            byte |= (uint32_t)((uint32_t)(y[k] - lo) < span) << k;
        *mask = (uint8_t)byte;
    }
}
