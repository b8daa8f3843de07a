/* Global average pool, int8: [h][w][c] -> [c]. Sums of (x - x_zero) per
 * channel in scratch (the map is read once, in order), then the pools'
 * rounding (mdy_requantize_mean) with count h*w. */
#include "medyate.h"
#include "mdy_requantize.h"

int32_t mdy_global_avgpool_nhwc_s8_get_buffer_size(int32_t h, int32_t w, int32_t c)
{
    (void)h;
    (void)w;
    return c * (int32_t)sizeof(int32_t);
}

void mdy_global_avgpool_nhwc_s8(int32_t h, int32_t w, int32_t c, const mdy_s8_rescale *q,
                                const int8_t *x, int8_t *y, int32_t *scratch)
{
    const int32_t hw = h * w;
    int32_t i, k;
    for (k = 0; k < c; ++k)
        scratch[k] = 0;
    for (i = 0; i < hw; ++i) {
        const int8_t *xp = x + (size_t)i * c;
        for (k = 0; k < c; ++k)
            scratch[k] += (int32_t)xp[k] - q->x_zero;
    }
    for (k = 0; k < c; ++k) {
        const int32_t v = mdy_requantize_mean(scratch[k], hw, q->multiplier, q->shift)
                          + q->y_zero;
        y[k] = mdy_clamp_s8(v, q->act_min, q->act_max);
    }
}
