/*
 * A trainable layer's parameters in real units, whatever their storage: the
 * floats of an fp32 layer, or an int8 layer's codes times their fixed scales
 * (weights: w_scale[o]; bias: x_scale * w_scale[o]). The device's
 * READ_WEIGHTS/WRITE_WEIGHTS and checkpoints go through here, so a weight
 * read and written back is the same code on every target.
 */
#include "mdy_runtime_internal.h"

#include <math.h>

static int layer_is_s8(const mdy_model *m, const mdy_layer *l)
{
    return m->tensors[m->ops[l->op].output].dtype == MDY_S8;
}

/* Output channel of weight element i: weights are output-channel major. */
static uint32_t out_channel(const mdy_model *m, const mdy_layer *l, uint32_t i)
{
    uint32_t per = mdy_layer_param_count(m, l, 0) / (uint32_t)m->ops[l->op].p.conv.out_c;
    return i / per;
}

uint32_t mdy_layer_param_count(const mdy_model *m, const mdy_layer *l, int which)
{
    if (which == 0)
        return (uint32_t)l->channels * (uint32_t)l->slice_size;
    return l->bias ? (uint32_t)m->ops[l->op].p.conv.out_c : 0u;
}

float mdy_layer_param_get(const mdy_model *m, const mdy_layer *l, int which, uint32_t i)
{
    const mdy_op *op = &m->ops[l->op];
    if (!layer_is_s8(m, l))
        return which == 0 ? ((const float *)l->weight)[i] : ((const float *)l->bias)[i];
    if (which == 0)
        return (float)((const int8_t *)l->weight)[i] * op->w_scales[out_channel(m, l, i)];
    return (float)((const int32_t *)l->bias)[i] * l->bias_scales[i];
}

void mdy_layer_param_set(const mdy_model *m, const mdy_layer *l, int which, uint32_t i, float v)
{
    const mdy_op *op = &m->ops[l->op];
    float q;
    if (!layer_is_s8(m, l)) {
        if (which == 0)
            ((float *)l->weight)[i] = v;
        else
            ((float *)l->bias)[i] = v;
        return;
    }
    /* the nearest code of the fixed scale, saturated as training saturates */
    if (which == 0) {
        q = rintf(v / op->w_scales[out_channel(m, l, i)]);
        q = q < -127.0f ? -127.0f : (q > 127.0f ? 127.0f : q);
        ((int8_t *)l->weight)[i] = (int8_t)q;
    } else {
        q = rintf(v / l->bias_scales[i]);
        /* 2147483520: the largest float below 2^31 */
        q = q < -2147483520.0f ? -2147483520.0f : (q > 2147483520.0f ? 2147483520.0f : q);
        ((int32_t *)l->bias)[i] = (int32_t)q;
    }
}
