/* SGD with QAS and stochastic rounding on one weight-gradient slice of an int8
 * layer (the contract: ../../reference/int8/mdy_sgd_slice_s8.c): the
 * reference's operations on every element in the same order, the rounding
 * draws one xorshift32 step per element in i order, so the codes, the
 * returned squared norm and the final state are bit-identical. What differs
 * is only how they are computed:
 *  - the weight and gradient pointers walk (no i * stride multiply per element);
 *  - the clamp to [-127, 127] is fmaxf then fminf (VMAXNM / VMINNM on the
 *    M7's FPv5: NaN gives -127 as the reference's comparisons do, since
 *    fmaxf returns the number when one operand is NaN), not compares and
 *    branches; v is then integral, so the conversion is exact;
 *  - on the M7, the draw u = (s >> 8) * 2^-24 is one fixed-point VCVT with 24
 *    fraction bits (exact: a 24-bit integer scaled by a power of two), not a
 *    VCVT and a VMUL. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"

/* (float)b * 2^-24 for b < 2^24: exact, as the reference computes it. */
static inline float u24(uint32_t b)
{
#if defined(__GNUC__) && defined(__ARM_FP) && (__ARM_FP & 4) && defined(__ARM_ARCH_7EM__)
    float f;
    __asm__("vmov %0, %1\n\tvcvt.f32.u32 %0, %0, #24" : "=t"(f) : "r"(b));
    return f;
#else
    return (float)b * (1.0f / 16777216.0f);
#endif
}

float mdy_sgd_slice_s8(int32_t groups, int32_t group, int8_t *w, int32_t stride,
                       const float *w_scales, float *g, float lr, uint32_t *rng)
{
    float norm2 = 0.0f;
    int32_t r, j;
    uint32_t s = *rng ? *rng : 0x9E3779B9u; /* xorshift32 must not start at 0 */
    for (r = 0; r < groups; ++r) {
        const float step = lr / w_scales[r];
        for (j = 0; j < group; ++j, w += stride, ++g) {
            const float gi = *g;
            float v, u;
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            u = u24(s >> 8);
            norm2 = fmaf(gi, gi, norm2);
            v = (float)*w - step * gi;
            v = floorf(v + u);
            v = fminf(fmaxf(v, -127.0f), 127.0f);
            *w = (int8_t)(int32_t)v;
            *g = 0.0f;
        }
    }
    *rng = s;
    return norm2;
}
