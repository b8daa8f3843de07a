/* Global average pool: [h][w][c] -> [c]. */
#include "medyate.h"

void mdy_global_avgpool_nhwc_f32(int32_t h, int32_t w, int32_t c, const float *x, float *y)
{
    const int32_t hw = h * w;
    int32_t p, k;
    if (hw <= 0)
        return;
    for (k = 0; k < c; ++k) {
        float acc = 0.0f;
        for (p = 0; p < hw; ++p)
            acc += x[(size_t)p * c + k];
        y[k] = acc / (float)hw;
    }
}
