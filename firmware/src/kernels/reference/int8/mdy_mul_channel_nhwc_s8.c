/* Squeeze-excite channel multiply, int8: y[hw][c] =
 * clamp(requantize((x - x_zero) * (s[c] - s_zero)) + y_zero). One product of
 * two codes (|.| <= 255^2) and one requantization per element. In place ok. */
#include "medyate.h"
#include "mdy_requantize.h"

void mdy_mul_channel_nhwc_s8(int32_t hw, int32_t c, const mdy_s8_mul_quant *q,
                             const int8_t *x, const int8_t *s, int8_t *y)
{
    int32_t i, k;
    for (i = 0; i < hw; ++i) {
        const int8_t *xp = x + (size_t)i * c;
        int8_t *yp = y + (size_t)i * c;
        for (k = 0; k < c; ++k) {
            const int32_t prod = ((int32_t)xp[k] - q->x_zero) * ((int32_t)s[k] - q->s_zero);
            const int32_t v = mdy_requantize(prod, q->multiplier, q->shift) + q->y_zero;
            yp[k] = mdy_clamp_s8(v, q->act_min, q->act_max);
        }
    }
}
