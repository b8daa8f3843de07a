/* SGD on one weight-gradient slice of an int8 layer, with QAS and stochastic
 * rounding. The gradient g is in real units (dL/dW, from the *_s8_wgrad
 * kernels); the weights are int8 codes with a frozen per-output-channel
 * scale s, W = s * code. TTE's QAS divides the gradient of the code by s^2;
 * the gradient of the code is s * g, so the code moves by lr * g / s, which is
 * the float model's step lr * g in real units. That step is usually below one
 * code, so it is rounded stochastically (floor(v + u), u uniform in [0, 1)
 * from a xorshift32 the caller seeds): unbiased, so sub-LSB steps accumulate
 * in expectation, and the same on host and device. Codes stay in
 * [-127, 127] (symmetric weights).
 *
 * Layout: element i of the slice is w[i * stride] and g[i]; the slice holds
 * `groups` runs of `group` elements, run r scaled by w_scales[r] (dense conv:
 * out_c runs of k_h*k_w, stride in_c; depthwise: m runs of k_h*k_w from
 * w_scales + c*m, stride 1; fully connected: out_features runs of 1, stride
 * in_features). Then g[i] = 0. Returns sum g[i]^2 (the channel statistic). */
#include <math.h>

#include "medyate.h"

float mdy_sgd_slice_s8(int32_t groups, int32_t group, int8_t *w, int32_t stride,
                       const float *w_scales, float *g, float lr, uint32_t *rng)
{
    float norm2 = 0.0f;
    int32_t r, j;
    uint32_t s = *rng ? *rng : 0x9E3779B9u; /* xorshift32 must not start at 0 */
    for (r = 0; r < groups; ++r) {
        const float step = lr / w_scales[r];
        for (j = 0; j < group; ++j) {
            const int32_t i = r * group + j;
            int8_t *wp = w + (size_t)i * stride;
            float v, u;
            int32_t q;
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            u = (float)(s >> 8) * (1.0f / 16777216.0f); /* 24 bits: exact in fp32 */
            norm2 = fmaf(g[i], g[i], norm2);
            v = (float)*wp - step * g[i];
            v = floorf(v + u);
            /* written so that NaN gives -127 instead of an undefined conversion */
            q = !(v >= -127.0f) ? -127 : v > 127.0f ? 127 : (int32_t)v;
            *wp = (int8_t)q;
            g[i] = 0.0f;
        }
    }
    *rng = s;
    return norm2;
}
