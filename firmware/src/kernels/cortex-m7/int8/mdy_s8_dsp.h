/* What the int8 kernels of this folder share: the Cortex-M7's DSP extension
 * (two 16-bit multiply-accumulates per SMLAD, SXTB16/SXTAB16 to widen two int8
 * lanes at once), through ACLE intrinsics where the compiler targets it, and a
 * portable C version of each instruction computing the same integers, so that
 * the host build compiles the same kernels and gets the same outputs.
 *
 * Lanes. A 32-bit word read from int8 memory holds bytes b0..b3 (b0 at the
 * lowest address, little-endian on both the M7 and the hosts this project
 * builds on). mdy_sxtab16(off, v) gives the int16 lanes (off.lo + b0, off.hi +
 * b2), mdy_sxtab16(off, mdy_ror8(v)) the lanes (b1, b3) + off. With
 * off = (-x_zero, -x_zero) a lane is x - x_zero in [-255, 255]: exact in 16
 * bits. Operands widened the same way pair up lane by lane, so SMLAD of the
 * even lanes and of the odd lanes adds the four products of a word, in an
 * order that differs from the reference's; the sum does not, because integer
 * addition is exact here: every partial sum of a kernel's terms is bounded by
 * the caller's guarantee |bias| + taps * (128 + |x_zero|) * 128 < 2^31
 * (medyate.h), so nothing wraps and no order can change the accumulator.
 *
 * Requantization is mdy_requantize (../../reference/int8/mdy_requantize.h),
 * the one definition; mdy_s8_requant_* is the same function computed with
 * fewer instructions (see there), tested equal to it.
 */
#ifndef MDY_S8_DSP_H
#define MDY_S8_DSP_H

#include <stdint.h>
#include <string.h>

#include "../fp32/mdy_blocking.h"
#include "medyate.h"
#include "../../reference/int8/mdy_requantize.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define MDY_S8_DSP 1
#endif

/* GCC schedules instructions for the M7 before register allocation, which in
 * these kernels' unrolled blocks runs one accumulator's chain ahead of the
 * others and keeps every widened operand alive, spilling them to the stack
 * (a 3x3 depthwise block: 50 stack accesses against 9 without). A file that
 * says MDY_S8_NO_PRESCHEDULE after its includes is compiled without that pass
 * (the pass after register allocation still runs). */
#if defined(__GNUC__) && !defined(__clang__) && defined(MDY_S8_DSP)
#define MDY_S8_NO_PRESCHEDULE _Pragma("GCC optimize(\"no-schedule-insns\")")
#else
#define MDY_S8_NO_PRESCHEDULE
#endif

/* Two int16 lanes in one word: lo = bits 0..15, hi = bits 16..31. */
typedef uint32_t mdy_s16x2;

/* Four int8 from any address (the M7 loads unaligned words in one LDR; memcpy
 * is how C99 says so without breaking aliasing or alignment rules). */
MDY_AI uint32_t mdy_read_s8x4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Bytes b1, b3 into the positions of b0, b2. */
MDY_AI uint32_t mdy_ror8(uint32_t v) { return (v >> 8) | (v << 24); }

/* Lanes and bytes in portable C (no implementation-defined conversion: sign
 * extension by xor and subtract). */
MDY_AI int32_t mdy_sext8(uint32_t u) { return (int32_t)((u & 0xffu) ^ 0x80u) - 0x80; }
MDY_AI int32_t mdy_lo16(mdy_s16x2 v) { return (int32_t)((v & 0xffffu) ^ 0x8000u) - 0x8000; }
MDY_AI int32_t mdy_hi16(mdy_s16x2 v) { return (int32_t)((v >> 16) ^ 0x8000u) - 0x8000; }
MDY_AI mdy_s16x2 mdy_pack16(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xffffu) | (((uint32_t)hi & 0xffffu) << 16);
}

/* Both lanes set to v (|v| < 2^15). */
MDY_AI mdy_s16x2 mdy_s16x2_dup(int32_t v)
{
    const uint32_t u = (uint32_t)v & 0xffffu;
    return u | (u << 16);
}

#ifdef MDY_S8_DSP
MDY_AI mdy_s16x2 mdy_sxtb16(uint32_t v) { return (mdy_s16x2)__sxtb16((int8x4_t)v); }
MDY_AI mdy_s16x2 mdy_sxtab16(mdy_s16x2 a, uint32_t v)
{
    return (mdy_s16x2)__sxtab16((int16x2_t)a, (int8x4_t)v);
}
/* The odd bytes: SXTB16 / SXTAB16 with their operand rotated by 8, one
 * instruction. ACLE has no intrinsic for the rotated forms and GCC 12 does not
 * fuse __sxtb16(rotate) into one, so these two are one-instruction inline
 * assembly, as CMSIS-Core's __SXTB16_RORn; measured: one instruction fewer
 * per word of int8 widened (bench/results/kernel_instr.md). */
#if defined(__GNUC__)
MDY_AI mdy_s16x2 mdy_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
MDY_AI mdy_s16x2 mdy_sxtab16_ror8(mdy_s16x2 a, uint32_t v)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
#else
MDY_AI mdy_s16x2 mdy_sxtb16_ror8(uint32_t v) { return mdy_sxtb16(mdy_ror8(v)); }
MDY_AI mdy_s16x2 mdy_sxtab16_ror8(mdy_s16x2 a, uint32_t v) { return mdy_sxtab16(a, mdy_ror8(v)); }
#endif
MDY_AI int32_t mdy_smlad(mdy_s16x2 a, mdy_s16x2 b, int32_t acc)
{
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}
MDY_AI int32_t mdy_smlabb(mdy_s16x2 a, mdy_s16x2 b, int32_t acc)
{
    return __smlabb((int32_t)a, (int32_t)b, acc);
}
MDY_AI int32_t mdy_smlatt(mdy_s16x2 a, mdy_s16x2 b, int32_t acc)
{
    return __smlatt((int32_t)a, (int32_t)b, acc);
}
#else
/* The same instructions in portable C. */
MDY_AI mdy_s16x2 mdy_sxtb16(uint32_t v) { return mdy_pack16(mdy_sext8(v), mdy_sext8(v >> 16)); }
MDY_AI mdy_s16x2 mdy_sxtab16(mdy_s16x2 a, uint32_t v)
{
    return mdy_pack16(mdy_lo16(a) + mdy_sext8(v), mdy_hi16(a) + mdy_sext8(v >> 16));
}
MDY_AI mdy_s16x2 mdy_sxtb16_ror8(uint32_t v) { return mdy_sxtb16(mdy_ror8(v)); }
MDY_AI mdy_s16x2 mdy_sxtab16_ror8(mdy_s16x2 a, uint32_t v) { return mdy_sxtab16(a, mdy_ror8(v)); }
MDY_AI int32_t mdy_smlad(mdy_s16x2 a, mdy_s16x2 b, int32_t acc)
{
    return acc + mdy_lo16(a) * mdy_lo16(b) + mdy_hi16(a) * mdy_hi16(b);
}
MDY_AI int32_t mdy_smlabb(mdy_s16x2 a, mdy_s16x2 b, int32_t acc)
{
    return acc + mdy_lo16(a) * mdy_lo16(b);
}
MDY_AI int32_t mdy_smlatt(mdy_s16x2 a, mdy_s16x2 b, int32_t acc)
{
    return acc + mdy_hi16(a) * mdy_hi16(b);
}
#endif

/* mdy_requantize(v, multiplier, shift) in fewer instructions, split into what
 * depends on the output channel only (computed once per channel) and what is
 * done per output. The common case is the one of real layers: a normalized
 * multiplier m > 2^30 (the host's are in [2^30, 2^31)) and shift <= -2 (a
 * scale below 1/4; with r = -shift). The reference computes
 *   h = srdhm(v, m) = floor((v m + 2^30) / 2^31)   (its trunc with the nudge
 *       equals this floor for every v, m but INT32_MIN * INT32_MIN), then
 *   round(h / 2^r), ties away from zero, = floor((floor((h - n) / 2^(r-1)) + 1) / 2)
 *       with n = (h < 0), since floor(floor(a) / k) = floor(a / k) for k >= 1.
 * Nested floors of divisions by powers of 2 merge, and m > 2^30 makes h < 0
 * exactly when v < 0, so the whole is one rounding of one 64-bit sum:
 *   floor((v m + K) / 2^(31+r)),  K = 2^(30+r) + (v < 0 ? -2^30 : 2^30),
 * that is the high word of v m + K (one SMLAL onto K) shifted right by r - 1.
 * K's high word is 2^(r-2) - (v < 0), its low word 2^30 | (v < 0) << 31 (r >= 2).
 * Other channels (rare: a scale of 1/4 or more, an exact power of two, a
 * negative multiplier) call mdy_requantize itself. Tested equal to it on any
 * int32 v (tests/c/test_kernels_optimized.c). */
typedef struct {
    int32_t multiplier, shift;
    int32_t k_high, right_1;    /* 2^(r-2) and r - 1 of the common case */
    int32_t general;            /* not the common case: mdy_requantize itself */
} mdy_s8_requant;

MDY_AI mdy_s8_requant mdy_s8_requant_channel(int32_t multiplier, int32_t shift)
{
    mdy_s8_requant r;
    r.multiplier = multiplier;
    r.shift = shift;
    r.general = !(multiplier > (1 << 30) && shift <= -2);
    r.k_high = r.general ? 0 : 1 << (-shift - 2);
    r.right_1 = r.general ? 0 : -shift - 1;
    return r;
}

/* The common case only (r.general == 0), for callers that checked a whole
 * block of channels at once. */
MDY_AI int32_t mdy_s8_requant_common(mdy_s8_requant r, int32_t v)
{
    const int32_t neg = v >> 31; /* -1 for v < 0, arithmetic as mdy_requantize.h assumes */
    const uint32_t k_low = 0x40000000u | ((uint32_t)neg << 31);
    const uint64_t k = ((uint64_t)(uint32_t)(r.k_high + neg) << 32) | k_low;
    const int64_t sum = (int64_t)(k + (uint64_t)((int64_t)v * r.multiplier));
    return (int32_t)(sum >> 32) >> r.right_1;
}

MDY_AI int32_t mdy_s8_requant_apply(mdy_s8_requant r, int32_t v)
{
    if (r.general)
        return mdy_requantize(v, r.multiplier, r.shift);
    return mdy_s8_requant_common(r, v);
}

/* The same rounding for r >= 1 (shift <= -1, multiplier > 2^30), which
 * elementwise kernels meet (an add's input rescale to twice the larger input
 * scale is a scale in [1/4, 1/2)): K = Kc - (v < 0) 2^31 with
 * Kc = 2^(30+r) + 2^30, whose words are (2^(r-2), 2^30) for r >= 2 and
 * (0, 2^31 + 2^30) for r = 1; the result is the high word of v m + K shifted
 * right by r - 1. */
typedef struct {
    int32_t multiplier, k_high, right_1;
    uint32_t k_low;
} mdy_s8_rescale_r1;

MDY_AI int mdy_s8_rescale_r1_ok(int32_t multiplier, int32_t shift)
{
    return multiplier > (1 << 30) && shift <= -1;
}

MDY_AI mdy_s8_rescale_r1 mdy_s8_rescale_r1_of(int32_t multiplier, int32_t shift)
{
    mdy_s8_rescale_r1 r;
    r.multiplier = multiplier;
    r.k_high = shift <= -2 ? 1 << (-shift - 2) : 0;
    r.k_low = shift <= -2 ? 0x40000000u : 0xC0000000u;
    r.right_1 = -shift - 1;
    return r;
}

MDY_AI int32_t mdy_s8_rescale_r1_apply(mdy_s8_rescale_r1 r, int32_t v)
{
    const uint64_t borrow = (uint64_t)((uint32_t)(v >> 31) & 0x80000000u);
    const uint64_t k = (((uint64_t)(uint32_t)r.k_high << 32) | r.k_low) - borrow;
    const int64_t sum = (int64_t)(k + (uint64_t)((int64_t)v * r.multiplier));
    return (int32_t)(sum >> 32) >> r.right_1;
}

/* mdy_requantize, computed as above (what the test compares with it). */
MDY_AI int32_t mdy_requantize_m7(int32_t v, int32_t multiplier, int32_t shift)
{
    return mdy_s8_requant_apply(mdy_s8_requant_channel(multiplier, shift), v);
}

/* The same with the r >= 1 rescale where it applies. */
MDY_AI int32_t mdy_requantize_m7_r1(int32_t v, int32_t multiplier, int32_t shift)
{
    if (mdy_s8_rescale_r1_ok(multiplier, shift))
        return mdy_s8_rescale_r1_apply(mdy_s8_rescale_r1_of(multiplier, shift), v);
    return mdy_requantize(v, multiplier, shift);
}

/* The output side of a layer, read once from its mdy_s8_conv_quant (an int8
 * store may alias any field, so the compiler would reload them per output). */
typedef struct {
    int32_t y_zero, act_min, act_max;
} mdy_s8_out;

MDY_AI mdy_s8_out mdy_s8_out_of(const mdy_s8_conv_quant *q)
{
    mdy_s8_out o;
    o.y_zero = q->y_zero;
    o.act_min = q->act_min;
    o.act_max = q->act_max;
    return o;
}

/* The last step of every output: requantize, add the output zero point, clamp. */
MDY_AI int8_t mdy_s8_output(mdy_s8_out o, mdy_s8_requant r, int32_t acc)
{
    return mdy_clamp_s8(mdy_s8_requant_apply(r, acc) + o.y_zero, o.act_min, o.act_max);
}

/* The same for a channel known to be in the common case. */
MDY_AI int8_t mdy_s8_output_common(mdy_s8_out o, mdy_s8_requant r, int32_t acc)
{
    return mdy_clamp_s8(mdy_s8_requant_common(r, acc) + o.y_zero, o.act_min, o.act_max);
}

/* Whether a layer's clamp is the whole int8 range (no fused activation, or a
 * ReLU whose zero point is -128): then one SSAT clamps. */
MDY_AI int mdy_s8_out_full(mdy_s8_out o) { return o.act_min == -128 && o.act_max == 127; }

/* mdy_clamp_s8(v, -128, 127): one SSAT #8 on the M7. */
MDY_AI int8_t mdy_s8_ssat8(int32_t v)
{
#ifdef MDY_S8_DSP
    return (int8_t)__ssat(v, 8);
#else
    return mdy_clamp_s8(v, -128, 127);
#endif
}

/* The output zero point folded into the rounding constant's high word:
 * (hi >> (r-1)) + y_zero = (hi + y_zero 2^(r-1)) >> (r-1), one addition less
 * per output. Exact while the sum cannot wrap: |hi| < 2^30 + 2^21 for r - 1
 * <= 22 and |y_zero| <= 128, so the callers check mdy_s8_fold_zero_ok. */
MDY_AI int mdy_s8_fold_zero_ok(mdy_s8_requant r) { return !r.general && r.right_1 <= 22; }

MDY_AI mdy_s8_requant mdy_s8_fold_zero(mdy_s8_requant r, int32_t y_zero)
{
    r.k_high = (int32_t)((uint32_t)r.k_high + ((uint32_t)y_zero << r.right_1));
    return r;
}

/* mdy_s8_output_common, and `full` a constant (2: the same with the zero
 * point folded, mdy_s8_fold_zero): the clamp is SSAT #8 when it
 * is the whole range (the same result as mdy_clamp_s8(v, -128, 127)). */
MDY_AI int8_t mdy_s8_output_k(const int full, mdy_s8_out o, mdy_s8_requant r, int32_t acc)
{
    if (full == 2) /* the whole range, y_zero already in r.k_high (mdy_s8_fold_zero) */
        return mdy_s8_ssat8(mdy_s8_requant_common(r, acc));
    const int32_t v = mdy_s8_requant_common(r, acc) + o.y_zero;
    if (!full)
        return mdy_clamp_s8(v, o.act_min, o.act_max);
    return mdy_s8_ssat8(v);
}

/* The block size of the dot products below: 2 positions (or rows) x 2
 * output channels, 4 accumulators. The inner loop then has 15 live values
 * (4 accumulators, 4 widened x halves, a weight word, 4 pointers, the offset
 * and the end), about what the M7's 14 allocatable registers hold; 2 x 4 had
 * GCC spill in every iteration and cost more per MAC. */
#define MDY_S8_NP 2
#define MDY_S8_NC 2

/* acc[p][j] += sum_{i < len} (x[p][i] - x_zero) * w[j][i] for p < np, j < nc. */
MDY_AI void s8_dot_block(const int np, const int nc, int32_t len, const int8_t *const *x,
                      const int8_t *const *w, int32_t x_zero, int32_t acc[MDY_S8_NP][MDY_S8_NC])
{
    const mdy_s16x2 off = mdy_s16x2_dup(-x_zero);
    int32_t i = 0;
    int p, j;
    for (; i + 4 <= len; i += 4) {
        mdy_s16x2 xe[MDY_S8_NP], xo[MDY_S8_NP];
        MDY_UNROLL(2)
        for (p = 0; p < np; ++p) {
            const uint32_t v = mdy_read_s8x4(x[p] + i);
            xe[p] = mdy_sxtab16(off, v);            /* x[i] - x_zero, x[i+2] - x_zero */
            xo[p] = mdy_sxtab16_ror8(off, v);  /* x[i+1], x[i+3] */
        }
        MDY_UNROLL(4)
        for (j = 0; j < nc; ++j) {
            const uint32_t v = mdy_read_s8x4(w[j] + i);
            const mdy_s16x2 we = mdy_sxtb16(v), wo = mdy_sxtb16_ror8(v);
            MDY_UNROLL(2)
            for (p = 0; p < np; ++p)
                acc[p][j] = mdy_smlad(xo[p], wo, mdy_smlad(xe[p], we, acc[p][j]));
        }
    }
    for (; i < len; ++i) {
        MDY_UNROLL(4)
        for (j = 0; j < nc; ++j) {
            const int32_t wv = w[j][i];
            MDY_UNROLL(2)
            for (p = 0; p < np; ++p)
                acc[p][j] += ((int32_t)x[p][i] - x_zero) * wv;
        }
    }
}

#endif /* MDY_S8_DSP_H */
