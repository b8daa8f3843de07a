/*
 * mdy_requantize.h: the fixed-point requantization every int8 kernel shares
 * (internal to the kernels; medyate.h is the public header).
 *
 * It is CMSIS-NN's arm_nn_requantize and TFLite's MultiplyByQuantizedMultiplier
 * (double rounding), so that an accumulator is rescaled the same way here, in
 * CMSIS-NN and in TFLite Micro. The host side is medyate.planner.quant:
 * quantize_multiplier() computes (multiplier, shift) from a real scale and
 * requantize() is the same integer arithmetic in numpy, element for element.
 *
 *   real scale s  =  multiplier * 2^(shift - 31),  multiplier in [2^30, 2^31)
 *   requantize(v) =  rdbpot(srdhm(sat32(v * 2^max(shift, 0)), multiplier), max(-shift, 0))
 *
 *   srdhm(a, b)  = round(a * b / 2^31), ties toward +infinity (the nudge of
 *                  +-2^30 and C's truncating division: -1.5 -> -1, 1.5 -> 2);
 *                  the one overflowing case (INT32_MIN * INT32_MIN) saturates
 *                  to INT32_MAX
 *   rdbpot(x, e) = round(x / 2^e), ties away from zero
 *   sat32        = saturation to int32 of the left shift (TFLite leaves this
 *                  overflow undefined; here it is defined and never reached by
 *                  the scales quant.py produces for conv, pool and add)
 *
 * Why not one rounding of v * s (TTE's simulator rounds acc * s in double):
 * the device has no double-precision FPU and an fp32 product is not exact for
 * 24-bit-plus accumulators; two integer roundings cost at most 1 LSB against
 * the exact value and are the same on every target.
 */
#ifndef MDY_REQUANTIZE_H
#define MDY_REQUANTIZE_H

#include <stdint.h>

/* round(a * b / 2^31), ties toward +infinity (gemmlowp's
 * SaturatingRoundingDoublingHighMul, CMSIS-NN's arm_nn_doubling_high_mult). */
static inline int32_t mdy_srdhm(int32_t a, int32_t b)
{
    int64_t ab, nudge;
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    /* division truncates toward zero: with the nudge, ties go up */
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* round(x / 2^e), ties away from zero, 0 <= e <= 31 (gemmlowp's RoundingDivideByPOT). */
static inline int32_t mdy_rounding_divide_by_pot(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)(((uint32_t)1u << e) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    /* >> of a negative int32 is arithmetic on every compiler this project uses */
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* v * multiplier * 2^(shift - 31), rounded as above; -31 <= shift <= 30. */
static inline int32_t mdy_requantize(int32_t v, int32_t multiplier, int32_t shift)
{
    int32_t right = 0;
    if (shift > 0) {
        int64_t wide = (int64_t)v * ((int64_t)1 << shift);
        v = wide > INT32_MAX ? INT32_MAX : wide < INT32_MIN ? INT32_MIN : (int32_t)wide;
    } else {
        right = -shift;
    }
    return mdy_rounding_divide_by_pot(mdy_srdhm(v, multiplier), right);
}

/* The pools' requantization of a window sum: one exact rounding of the mean,
 *   round(sum * multiplier / (count * 2^(31 - shift))), ties to even,
 * so that with the same quantization in and out it is the mean of the codes
 * rounded as TTE's simulator (torch.round) and ONNX QuantizeLinear (rint of the
 * float mean) round it. A window's count varies at the borders, which rules
 * out a precomputed multiplier per window; the int64 division runs once per
 * output element. count <= 2^22; when 31 - shift > 40 the result is below 1/4
 * in magnitude for any int8 sum (|sum| < 2^8 count, multiplier < 2^31), hence 0. */
static inline int32_t mdy_requantize_mean(int32_t sum, int32_t count, int32_t multiplier,
                                          int32_t shift)
{
    const int32_t e = 31 - shift;
    int64_t num, mag, den, quo, rem;
    if (e > 40)
        return 0;
    num = (int64_t)sum * (int64_t)multiplier;
    mag = num < 0 ? -num : num;
    den = (int64_t)count * ((int64_t)1 << e);
    quo = mag / den;
    rem = mag - quo * den;
    /* rem > den - rem: more than half (no 2 * rem, which could overflow) */
    if (rem > den - rem || (rem == den - rem && (quo & 1)))
        ++quo;
    quo = quo > INT32_MAX ? INT32_MAX : quo; /* only for scales no int8 op has */
    return (int32_t)(num < 0 ? -quo : quo);
}

/* The last step of every kernel: add the output zero point, clamp to the
 * activation's range (a subset of [-128, 127]). */
static inline int8_t mdy_clamp_s8(int32_t v, int32_t act_min, int32_t act_max)
{
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

#endif /* MDY_REQUANTIZE_H */
