/* Concat along channels, int8: y[hw] = [rescale_a(a[hw]) | rescale_b(b[hw])],
 * each part brought to the output's scale and zero point (ONNX QDQ lets the
 * inputs keep their own). */
#include "medyate.h"
#include "mdy_requantize.h"

static void part(int32_t hw, int32_t cp, int32_t c, const mdy_s8_rescale *q,
                 const int8_t *x, int8_t *y)
{
    int32_t i, k;
    for (i = 0; i < hw; ++i) {
        const int8_t *xp = x + (size_t)i * cp;
        int8_t *yp = y + (size_t)i * c;
        for (k = 0; k < cp; ++k) {
            const int32_t v = mdy_requantize((int32_t)xp[k] - q->x_zero, q->multiplier,
                                             q->shift) + q->y_zero;
            yp[k] = mdy_clamp_s8(v, q->act_min, q->act_max);
        }
    }
}

void mdy_concat_channels_nhwc_s8(int32_t hw, int32_t ca, int32_t cb,
                                 const mdy_s8_rescale *qa, const mdy_s8_rescale *qb,
                                 const int8_t *a, const int8_t *b, int8_t *y)
{
    part(hw, ca, ca + cb, qa, a, y);
    part(hw, cb, ca + cb, qb, b, y + ca);
}
