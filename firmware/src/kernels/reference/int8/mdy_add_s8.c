/* Residual add, int8, inputs with their own scales (TFLite's int8 Add):
 *   a' = requantize((a - a_zero) << 20, a_multiplier, a_shift)
 *   b' = requantize((b - b_zero) << 20, b_multiplier, b_shift)
 *   y  = clamp(requantize(a' + b', y_multiplier, y_shift) + y_zero)
 * The 20 bits of headroom keep the rescaled inputs' fractions, so the sum is
 * rounded once, at the end, to within 1 LSB of the exact value. */
#include "medyate.h"
#include "mdy_requantize.h"

void mdy_add_s8(int32_t n, const mdy_s8_add_quant *q, const int8_t *a, const int8_t *b,
                int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        /* |code - zero| <= 255 < 2^8: the shifted value fits in 28 bits */
        const int32_t sa = ((int32_t)a[i] - q->a_zero) * ((int32_t)1 << MDY_S8_ADD_LEFT_SHIFT);
        const int32_t sb = ((int32_t)b[i] - q->b_zero) * ((int32_t)1 << MDY_S8_ADD_LEFT_SHIFT);
        const int32_t ra = mdy_requantize(sa, q->a_multiplier, q->a_shift);
        const int32_t rb = mdy_requantize(sb, q->b_multiplier, q->b_shift);
        const int32_t v = mdy_requantize(ra + rb, q->y_multiplier, q->y_shift) + q->y_zero;
        y[i] = mdy_clamp_s8(v, q->act_min, q->act_max);
    }
}
