/* Global average pool input gradient: every position of channel c gets dy[c] / (h*w). */
#include "medyate.h"

void mdy_global_avgpool_nhwc_f32_igrad(int32_t h, int32_t w, int32_t c,
                                       const float *dy, float *dx, int accumulate)
{
    const int32_t hw = h * w;
    int32_t p, k;
    float inv;
    if (hw <= 0)
        return;
    inv = 1.0f / (float)hw;
    for (p = 0; p < hw; ++p) {
        for (k = 0; k < c; ++k) {
            const size_t i = (size_t)p * c + k;
            const float g = dy[k] * inv;
            dx[i] = accumulate ? dx[i] + g : g;
        }
    }
}
