/* Residual add, int8, Cortex-M7: the reference's three requantizations per
 * element (each input's (code - zero) << 20 rescaled to the common scale, the
 * sum to the output), bit-identical to ../../reference/int8/, with what is
 * known per call decided once, outside the element loop.
 *
 * The add's quantization (medyate.planner.quant.add_quant, TFLite's scheme)
 * rescales the input of the larger scale by exactly 1/2, multiplier 2^30 and
 * shift 0: srdhm of an even number by 2^30 is its exact half, so the rescale
 * of (code - zero) << 20 is (code - zero) << 19, and with a shift s in
 * [-19, 0] the rounding divide is exact too, << (19 + s). The other input's
 * scale is in (0, 1/2] (mdy_s8_rescale_r1, r >= 1), the output's far below
 * 1/4 (the same). Other parameters take mdy_requantize per element. */
#include "medyate.h"
#include "mdy_s8_dsp.h"

enum { EXACT, R1, GENERAL };

typedef struct {
    int kind;
    int32_t zero, multiplier, shift;
    int32_t left;               /* EXACT: 19 + shift */
    mdy_s8_rescale_r1 r1;       /* R1 */
} input_rescale;

static input_rescale input_of(int32_t zero, int32_t multiplier, int32_t shift)
{
    input_rescale in;
    in.zero = zero;
    in.multiplier = multiplier;
    in.shift = shift;
    in.left = 0;
    in.r1 = mdy_s8_rescale_r1_of(multiplier, shift);
    if (multiplier == (1 << 30) && shift <= 0 && shift >= 1 - MDY_S8_ADD_LEFT_SHIFT) {
        in.kind = EXACT;
        in.left = MDY_S8_ADD_LEFT_SHIFT - 1 + shift;
    } else {
        in.kind = mdy_s8_rescale_r1_ok(multiplier, shift) ? R1 : GENERAL;
    }
    return in;
}

/* One input's rescaled value; |code - zero| <= 255, so << 20 fits in 28 bits. */
MDY_AI int32_t rescale(const int kind, const input_rescale *in, int32_t code)
{
    const int32_t d = code - in->zero;
    if (kind == EXACT)
        return d * ((int32_t)1 << in->left);
    if (kind == R1)
        return mdy_s8_rescale_r1_apply(in->r1, d * ((int32_t)1 << MDY_S8_ADD_LEFT_SHIFT));
    return mdy_requantize(d * ((int32_t)1 << MDY_S8_ADD_LEFT_SHIFT), in->multiplier, in->shift);
}

typedef struct {
    input_rescale a, b;
    int y_r1;
    mdy_s8_rescale_r1 y;
    int32_t y_multiplier, y_shift, y_zero, act_min, act_max;
} add_params;

/* The element loop, the inputs' kinds constants (ka, kb) or, with `any`, read
 * per element; `fast`: the output's rescale is mdy_s8_rescale_r1 and the clamp
 * the whole int8 range (SSAT). In place (y == a or y == b) as the reference:
 * element i is read before it is written. */
MDY_AI void add_loop(const int any, const int ka, const int kb, const int fast, int32_t n,
                     const add_params *P, const int8_t *a, const int8_t *b, int8_t *y)
{
    const add_params Q = *P; /* a local copy: no int8 store can alias it */
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t s = rescale(any ? Q.a.kind : ka, &Q.a, a[i]) +
                          rescale(any ? Q.b.kind : kb, &Q.b, b[i]);
        if (fast) {
            y[i] = mdy_s8_ssat8(mdy_s8_rescale_r1_apply(Q.y, s) + Q.y_zero);
        } else {
            const int32_t v = Q.y_r1 ? mdy_s8_rescale_r1_apply(Q.y, s)
                                     : mdy_requantize(s, Q.y_multiplier, Q.y_shift);
            y[i] = mdy_clamp_s8(v + Q.y_zero, Q.act_min, Q.act_max);
        }
    }
}

MDY_NOINLINE static void add_exact_r1(int32_t n, const add_params *P, const int8_t *a,
                                      const int8_t *b, int8_t *y)
{
    add_loop(0, EXACT, R1, 1, n, P, a, b, y);
}

MDY_NOINLINE static void add_any(int32_t n, const add_params *P, const int8_t *a,
                                 const int8_t *b, int8_t *y)
{
    add_loop(1, GENERAL, GENERAL, 0, n, P, a, b, y);
}

void mdy_add_s8(int32_t n, const mdy_s8_add_quant *q, const int8_t *a, const int8_t *b,
                int8_t *y)
{
    add_params P;
    int fast;
    P.a = input_of(q->a_zero, q->a_multiplier, q->a_shift);
    P.b = input_of(q->b_zero, q->b_multiplier, q->b_shift);
    P.y_r1 = mdy_s8_rescale_r1_ok(q->y_multiplier, q->y_shift);
    P.y = mdy_s8_rescale_r1_of(q->y_multiplier, q->y_shift);
    P.y_multiplier = q->y_multiplier;
    P.y_shift = q->y_shift;
    P.y_zero = q->y_zero;
    P.act_min = q->act_min;
    P.act_max = q->act_max;
    /* the sum is commutative: (R1, EXACT) is (EXACT, R1) with a and b swapped */
    fast = P.y_r1 && P.act_min == -128 && P.act_max == 127;
    if (P.a.kind == EXACT && P.b.kind == R1 && fast) {
        add_exact_r1(n, &P, a, b, y);
    } else if (P.a.kind == R1 && P.b.kind == EXACT && fast) {
        const input_rescale t = P.a;
        P.a = P.b;
        P.b = t;
        add_exact_r1(n, &P, b, a, y);
    } else {
        add_any(n, &P, a, b, y);
    }
}
