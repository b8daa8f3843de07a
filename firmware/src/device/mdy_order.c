/*
 * Epoch sample order: Fisher-Yates driven by xorshift32, bit-identical to
 * host/medyate/protocol/order.py so the host simulation trains on the same
 * mini-batches as the device.
 */
#include "mdy_device.h"

uint32_t mdy_xorshift32(uint32_t x)
{
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

void mdy_epoch_order(uint16_t *perm, uint32_t n, uint32_t seed)
{
    uint32_t i, state = seed;
    for (i = 0; i < n; i++)
        perm[i] = (uint16_t)i;
    if (seed == 0 || n < 2)
        return;  /* 0 is xorshift32's fixed point: it means "no shuffle" */
    for (i = n - 1; i > 0; i--) {
        uint32_t bound = i + 1, j;
        /* rejection keeps the draw unbiased; both sides reject the same values */
        uint64_t limit = (0x100000000ull / bound) * bound;
        uint16_t t;
        do
            state = mdy_xorshift32(state);
        while ((uint64_t)state >= limit);
        j = state % bound;
        t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
