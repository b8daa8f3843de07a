/*
 * mdy_math_f32.h: exp and log in single precision for the softmax kernels
 * (internal to the kernels; medyate.h is the public header).
 *
 * Why not expf/logf from <math.h>: the C library differs between targets and
 * so do its last bits. The host's glibc rounds expf/logf correctly or nearly
 * so; newlib, as built for a Cortex-M7 with a single-precision FPU, uses the
 * older fdlibm float code, within about 1 ulp. The training loss and every
 * logit gradient go through exp and log, so two targets with otherwise
 * identical arithmetic drifted apart from the first SGD step. These two are
 * plain C99 float arithmetic with explicit fmaf (no fused multiply-add unless
 * written, -ffp-contract=off) and integer bit manipulation only, so every
 * target computes the very same bits.
 *
 * Accuracy (tests/kernels, against float64 numpy over all of fp32's range):
 * mdy_expf within 1 ulp, mdy_logf within 1 ulp. Special values as C99's:
 * exp(NaN) = NaN, exp(+inf) = +inf, exp(-inf) = 0, overflow to +inf and
 * gradual underflow to subnormals and 0; log(NaN or x < 0) = NaN,
 * log(+-0) = -inf, log(+inf) = +inf.
 */
#ifndef MDY_MATH_F32_H
#define MDY_MATH_F32_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t mdy_f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float mdy_f32_from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* 2^k for k in [-126, 127], exactly */
static inline float mdy_exp2i_f32(int32_t k)
{
    return mdy_f32_from_bits((uint32_t)(k + 127) << 23);
}

/* e^x: x = k ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^8 (relative
 * truncation error below 1e-9, a sixtieth of an ulp), then scaled by 2^k in
 * steps that are exact until the one final rounding into subnormals. */
static inline float mdy_expf(float x)
{
    /* ln2 split so that k * LN2_HI is exact for |k| < 2^9 */
    const float LN2_HI = 6.93145752e-01f;   /* 0x3f317200 */
    const float LN2_LO = 1.42860677e-06f;   /* ln2 - LN2_HI */
    const float LOG2E = 1.44269504e+00f;
    float kf, r, p;
    int32_t k;

    if (x != x)
        return x + x;                        /* NaN */
    if (x > 88.7228394f)                     /* above log(FLT_MAX), +inf too */
        return HUGE_VALF;
    if (x < -103.972084f)                    /* below log of half the least subnormal */
        return 0.0f;
    /* k = round(x / ln2), ties away from zero, without lroundf: |x * LOG2E| < 150 */
    kf = x * LOG2E;
    k = (int32_t)(kf < 0.0f ? kf - 0.5f : kf + 0.5f);
    kf = (float)k;
    r = fmaf(-kf, LN2_HI, x);                /* exact: the product is, and cancels */
    r = fmaf(-kf, LN2_LO, r);
    p = 2.48015873e-05f;                     /* 1/8! */
    p = fmaf(p, r, 1.98412698e-04f);         /* 1/7! */
    p = fmaf(p, r, 1.38888889e-03f);         /* 1/6! */
    p = fmaf(p, r, 8.33333333e-03f);         /* 1/5! */
    p = fmaf(p, r, 4.16666667e-02f);         /* 1/4! */
    p = fmaf(p, r, 1.66666667e-01f);         /* 1/3! */
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);                    /* e^r in [0.70, 1.42] */
    if (k > 127)
        return p * 2.0f * mdy_exp2i_f32(k - 1);
    if (k < -125)                            /* subnormal or tiny: round once */
        return p * mdy_exp2i_f32(k + 100) * 7.88860905e-31f;   /* 2^-100 */
    return p * mdy_exp2i_f32(k);
}

/* log(x): x = 2^e m, m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), then
 * log(1 + f) = 2 atanh(s), s = f / (2 + f) = 2s + s R(s^2), written as
 * f - (f^2/2 - s (f^2/2 + R)) so that the rounding of s only touches the
 * small correction term; R by its series to s^10 (relative truncation error
 * below 1e-10). */
static inline float mdy_logf(float x)
{
    const float LN2_HI = 6.93145752e-01f;   /* as in mdy_expf: e * LN2_HI exact */
    const float LN2_LO = 1.42860677e-06f;
    uint32_t u;
    int32_t e = 0;
    float f, s, z, hfsq, R, ef;

    if (x != x)
        return x + x;                        /* NaN */
    if (x < 0.0f)
        return (x - x) / (x - x);            /* NaN (-inf too) */
    if (x == 0.0f)
        return -HUGE_VALF;
    if (x == HUGE_VALF)
        return x;
    u = mdy_f32_bits(x);
    if (u < 0x00800000u) {                   /* subnormal: scale by 2^25 */
        e = -25;
        u = mdy_f32_bits(x * 33554432.0f);
    }
    e += (int32_t)(u >> 23) - 127;
    u &= 0x007fffffu;
    if (u > 0x003504f3u) {                   /* mantissa above sqrt(2): m in [sqrt(1/2), 1) */
        u |= 0x3f000000u;
        e += 1;
    } else {                                 /* m in [1, sqrt(2)] */
        u |= 0x3f800000u;
    }
    f = mdy_f32_from_bits(u) - 1.0f;
    s = f / (2.0f + f);
    z = s * s;
    R = fmaf(z, 1.81818187e-01f, 2.22222224e-01f);   /* 2/11, 2/9 */
    R = fmaf(R, z, 2.85714298e-01f);                 /* 2/7 */
    R = fmaf(R, z, 4.00000006e-01f);                 /* 2/5 */
    R = fmaf(R, z, 6.66666687e-01f);                 /* 2/3 */
    R = R * z;
    hfsq = 0.5f * f * f;
    ef = (float)e;
    return fmaf(ef, LN2_HI, f - (hfsq - fmaf(s, hfsq + R, ef * LN2_LO)));
}

#endif
