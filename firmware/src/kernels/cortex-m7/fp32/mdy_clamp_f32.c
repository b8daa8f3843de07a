/* Clamp (ReLU, ReLU6, Clip), y = min(max(x, lo), hi), and its 1-bit mask:
 * eight elements per mask byte with the byte built in a register (the
 * reference tests the byte's end and the mask pointer per element). The
 * outputs and mask bits are the reference's for every input, -0 and NaN
 * included (y = NaN, bit clear); no VMAXNM/VMINNM, which turn NaN into a
 * bound and -0 into +0. x and y may alias: each element is read before it
 * is written. The folder's Arm code assumes the M7's FPv5 (VSEL). */
#include "medyate.h"
#include "mdy_blocking.h"

#if defined(__GNUC__) && defined(__thumb2__) && defined(__ARM_FP) && (__ARM_FP & 4)
#define MDY_CLAMP_VSEL 1 /* the Cortex-M7's FPv5 has VSEL */
#endif

/* One element, as the reference computes it: below lo gives lo, else above
 * hi gives hi, else x (NaN stays NaN); the mask bit is lo < x < hi. On the
 * M7 the two selects are VSELs on the flags of one compare each, and the bit
 * comes from the same two compares (GCC emits branches and a second pair of
 * compares for it): 13 instructions with the load and the store. */
MDY_AI uint32_t clamp_one(const float *x, float lo, float hi, float *y)
{
    const float v = *x;
#ifdef MDY_CLAMP_VSEL
    float c;
    uint32_t bit;
    __asm__("vcmpe.f32 %[v], %[hi]\n\t"     /* GT: v > hi; MI: v < hi */
            "vmrs APSR_nzcv, fpscr\n\t"
            "vselgt.f32 %[c], %[hi], %[v]\n\t"
            "ite mi\n\t"
            "movmi %[b], #1\n\t"
            "movpl %[b], #0\n\t"
            "vcmpe.f32 %[lo], %[v]\n\t"     /* GT: v < lo; MI: lo < v */
            "vmrs APSR_nzcv, fpscr\n\t"
            "vselgt.f32 %[c], %[lo], %[c]\n\t"
            "it pl\n\t"
            "movpl %[b], #0\n\t"
            : [c] "=&t"(c), [b] "=&r"(bit)
            : [v] "t"(v), [lo] "t"(lo), [hi] "t"(hi)
            : "cc");
    *y = c;
    return bit;
#else
    *y = v < lo ? lo : (v > hi ? hi : v);
    return (uint32_t)((v > lo) & (v < hi));
#endif
}

void mdy_clamp_f32(int32_t n, const float *x, float lo, float hi, float *y, uint8_t *mask)
{
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint32_t byte = 0;
        int k;
MDY_UNROLL(8)
        for (k = 0; k < 8; ++k)
            byte |= clamp_one(x + i + k, lo, hi, y + i + k) << k;
        if (mask)
            mask[i >> 3] = (uint8_t)byte;
    }
    if (i < n) {
        uint32_t byte = 0;
        int k;
        for (k = 0; i + k < n; ++k)
            byte |= clamp_one(x + i + k, lo, hi, y + i + k) << k;
        if (mask)
            mask[i >> 3] = (uint8_t)byte;
    }
}
