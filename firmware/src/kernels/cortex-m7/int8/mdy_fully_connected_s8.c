/* Fully connected, int8, Cortex-M7: y[o] = requantize(bias[o] + sum_i (x[i] -
 * x_zero) w[o][i]), the reference's accumulators with two MACs per SMLAD,
 * bit-identical to ../../reference/int8/. Outputs in pairs share each widened
 * word of x (mdy_s8_dsp.h's dot block with one "position"); no scratch. */
#include "medyate.h"
#include "mdy_s8_dsp.h"

MDY_S8_NO_PRESCHEDULE

MDY_AI void outputs_block(const int nc, int32_t in_features, int32_t x_zero, mdy_s8_out out,
                          const int32_t *multiplier, const int32_t *shift, const int8_t *x,
                          const int8_t *w, const int32_t *bias, int8_t *y, int32_t o)
{
    int32_t acc[MDY_S8_NP][MDY_S8_NC];
    const int8_t *xs[MDY_S8_NP], *ws[MDY_S8_NC];
    int j;
    xs[0] = x;
    MDY_UNROLL(2)
    for (j = 0; j < nc; ++j) {
        acc[0][j] = bias ? bias[o + j] : 0;
        ws[j] = w + (size_t)(o + j) * in_features;
    }
    s8_dot_block(1, nc, in_features, xs, ws, x_zero, acc);
    MDY_UNROLL(2)
    for (j = 0; j < nc; ++j)
        y[o + j] = mdy_s8_output(out, mdy_s8_requant_channel(multiplier[o + j], shift[o + j]),
                                 acc[0][j]);
}

void mdy_fully_connected_s8(int32_t in_features, int32_t out_features,
                            const mdy_s8_conv_quant *q, const int8_t *x, const int8_t *w,
                            const int32_t *bias, int8_t *y)
{
    const mdy_s8_out out = mdy_s8_out_of(q);
    const int32_t *multiplier = q->multiplier, *shift = q->shift, x_zero = q->x_zero;
    int32_t o = 0;
    for (; o + MDY_S8_NC <= out_features; o += MDY_S8_NC)
        outputs_block(MDY_S8_NC, in_features, x_zero, out, multiplier, shift, x, w, bias, y, o);
    for (; o < out_features; ++o)
        outputs_block(1, in_features, x_zero, out, multiplier, shift, x, w, bias, y, o);
}
