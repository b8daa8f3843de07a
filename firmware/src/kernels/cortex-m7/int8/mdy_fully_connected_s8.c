/* Fully connected, int8, Cortex-M7: y[o] = requantize(bias[o] + sum_i (x[i] -
 * x_zero) w[o][i]), the reference's accumulators with two MACs per SMLAD,
 * bit-identical to ../../reference/int8/. Outputs in pairs share each widened
 * word of x (mdy_s8_dsp.h's dot block with one "position"); no scratch. */
#include "medyate.h"
#include "mdy_s8_dsp.h"

MDY_AI void outputs_block(const int nc, int32_t in_features, const mdy_s8_conv_quant *q,
                          const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y,
                          int32_t o)
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
    s8_dot_block(1, nc, in_features, xs, ws, q->x_zero, acc);
    MDY_UNROLL(2)
    for (j = 0; j < nc; ++j)
        y[o + j] = mdy_output_s8(acc[0][j], q->multiplier[o + j], q->shift[o + j], q->y_zero,
                                 q->act_min, q->act_max);
}

void mdy_fully_connected_s8(int32_t in_features, int32_t out_features,
                            const mdy_s8_conv_quant *q, const int8_t *x, const int8_t *w,
                            const int32_t *bias, int8_t *y)
{
    int32_t o = 0;
    for (; o + MDY_S8_NC <= out_features; o += MDY_S8_NC)
        outputs_block(MDY_S8_NC, in_features, q, x, w, bias, y, o);
    for (; o < out_features; ++o)
        outputs_block(1, in_features, q, x, w, bias, y, o);
}
