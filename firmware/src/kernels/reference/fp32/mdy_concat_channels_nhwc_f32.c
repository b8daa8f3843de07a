/* Concat along channels: y[hw] = [a[hw] (ca) | b[hw] (cb)]. */
#include "medyate.h"

void mdy_concat_channels_nhwc_f32(int32_t hw, int32_t ca, int32_t cb,
                                  const float *a, const float *b, float *y)
{
    int32_t p, k;
    for (p = 0; p < hw; ++p) {
        float *yp = y + (size_t)p * (ca + cb);
        for (k = 0; k < ca; ++k)
            yp[k] = a[(size_t)p * ca + k];
        for (k = 0; k < cb; ++k)
            yp[ca + k] = b[(size_t)p * cb + k];
    }
}
