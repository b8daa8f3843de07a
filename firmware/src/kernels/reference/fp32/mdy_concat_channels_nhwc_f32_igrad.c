/* Concat input gradient: part 0 takes channels [0, ca) of dy (dx is [hw][ca]),
 * part 1 takes channels [ca, ca+cb) (dx is [hw][cb]). */
#include "medyate.h"

void mdy_concat_channels_nhwc_f32_igrad(int32_t hw, int32_t ca, int32_t cb, int32_t part,
                                        const float *dy, float *dx, int accumulate)
{
    const int32_t cn = part == 0 ? ca : cb;
    const int32_t first = part == 0 ? 0 : ca;
    int32_t p, k;
    if (part != 0 && part != 1)
        return;
    for (p = 0; p < hw; ++p) {
        const float *dyp = dy + (size_t)p * (ca + cb) + first;
        float *dxp = dx + (size_t)p * cn;
        for (k = 0; k < cn; ++k)
            dxp[k] = accumulate ? dxp[k] + dyp[k] : dyp[k];
    }
}
