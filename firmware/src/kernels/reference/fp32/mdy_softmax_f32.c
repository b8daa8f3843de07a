/* Softmax, shifted by the maximum so exp never overflows. y may alias x.
 * mdy_expf, not the C library's expf: the same bits on every target. */
#include "medyate.h"
#include "mdy_math_f32.h"

void mdy_softmax_f32(int32_t n, const float *x, float *y)
{
    float mx, sum = 0.0f, inv;
    int32_t i;
    if (n <= 0)
        return;
    mx = x[0];
    for (i = 1; i < n; ++i)
        if (x[i] > mx)
            mx = x[i];
    for (i = 0; i < n; ++i) {
        y[i] = mdy_expf(x[i] - mx);
        sum += y[i];
    }
    inv = 1.0f / sum;
    for (i = 0; i < n; ++i)
        y[i] *= inv;
}
