/* SGD with QAS on an int8 layer's int32 bias (codes of scale x_scale *
 * w_scale[o], zero point 0): b[o] moves by lr * g[o] / bias_scale[o] codes,
 * the float model's step lr * g in real units, rounded stochastically as the
 * weights are (mdy_sgd_slice_s8, same xorshift32 state). The step is formed
 * in fp32 and only the integer step is added (the int32 code itself has more
 * bits than fp32 holds); the sum saturates to int32. Then g[o] = 0. Returns
 * sum g^2 before the update. */
#include <math.h>

#include "medyate.h"

float mdy_sgd_bias_s32(int32_t n, int32_t *b, const float *bias_scales, float *g, float lr,
                       uint32_t *rng)
{
    float norm2 = 0.0f;
    int32_t o;
    uint32_t s = *rng ? *rng : 0x9E3779B9u;
    for (o = 0; o < n; ++o) {
        float d, u;
        int64_t v;
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        u = (float)(s >> 8) * (1.0f / 16777216.0f);
        norm2 = fmaf(g[o], g[o], norm2);
        d = floorf(u - (lr / bias_scales[o]) * g[o]);
        /* NaN and steps beyond 2^30 codes saturate instead of converting undefined */
        d = !(d >= -1073741824.0f) ? -1073741824.0f : d > 1073741824.0f ? 1073741824.0f : d;
        v = (int64_t)b[o] + (int64_t)d;
        b[o] = v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
        g[o] = 0.0f;
    }
    *rng = s;
    return norm2;
}
