/* Bias gradient: db[o] += sum over positions of dy[hw][o] (accumulates over
 * the samples of a mini-batch like the weight-gradient slices). */
#include "medyate.h"

void mdy_bias_grad_nhwc_f32(int32_t hw, int32_t c, const float *dy, float *db)
{
    int32_t o, s;
    for (o = 0; o < c; ++o) {
        float acc = 0.0f;
        for (s = 0; s < hw; ++s)
            acc += dy[(size_t)s * c + o];
        db[o] += acc;
    }
}
