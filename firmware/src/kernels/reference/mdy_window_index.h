/*
 * mdy_window_index.h: the max pools' backward state (internal to the kernels;
 * medyate.h is the public header). The fp32 and int8 max pools write it and
 * mdy_maxpool_nhwc_f32_igrad reads it, so the packing lives here once.
 *
 * For each output element e (NHWC order), the position t = kh*k_w + kw of the
 * first maximum of its window, packed LSB-first in b bits at bit offset e*b,
 * b = bits needed for k_h*k_w - 1 (0 for a 1x1 window: nothing is stored).
 * One bit per input element cannot tell overlapping windows (stride < kernel)
 * apart; the packed index can, and is never larger for non-overlapping ones
 * (b <= log2(k_h*k_w) + 1 bits per window vs k_h*k_w).
 */
#ifndef MDY_WINDOW_INDEX_H
#define MDY_WINDOW_INDEX_H

#include <stdint.h>

/* Bits per index of a window of `window` taps: ceil(log2(window)). */
static inline int32_t mdy_window_index_bits(int32_t window)
{
    int32_t b = 0;
    while (((int32_t)1 << b) < window)
        ++b;
    return b;
}

/* Bytes of n indices of b bits. */
static inline int32_t mdy_window_index_bytes(int32_t n, int32_t b)
{
    return (n * b + 7) / 8;
}

/* Stores index t of element e; the mask must start zeroed (bits are only set). */
static inline void mdy_window_index_put(uint8_t *mask, int32_t e, int32_t b, int32_t t)
{
    int32_t j;
    for (j = 0; j < b; ++j) {
        const int32_t bit = e * b + j;
        if ((t >> j) & 1)
            mask[bit >> 3] = (uint8_t)(mask[bit >> 3] | (1u << (bit & 7)));
    }
}

/* The index of element e. */
static inline int32_t mdy_window_index_get(const uint8_t *mask, int32_t e, int32_t b)
{
    int32_t t = 0, j;
    for (j = 0; j < b; ++j) {
        const int32_t bit = e * b + j;
        t |= ((mask[bit >> 3] >> (bit & 7)) & 1) << j;
    }
    return t;
}

#endif /* MDY_WINDOW_INDEX_H */
