/*
 * Backward pass: loss gradient, then ops in reverse down to ctx->first_op.
 * Trained layers accumulate the weight-gradient slices of their selected
 * channels (and bias gradients); every op above first_op propagates the
 * input gradient to each input that has a planned gradient buffer. Frozen
 * layers below the deepest trained op are never visited.
 */
#include "mdy_runtime_internal.h"
#include "mdy_kernel_set.h"

#include <math.h>

static mdy_status layer_grads(const mdy_ctx *ctx, const mdy_op *op, const float *dy)
{
    const mdy_layer *l = &ctx->model->layers[op->layer];
    const mdy_tensor *tx = &ctx->model->tensors[op->input[0]];
    mdy_block b = mdy_layer_block(ctx, op->layer);
    const uint16_t *ch = mdy_sel_channels(ctx) + b.first;
    int32_t n = (int32_t)b.count;

    if (b.count > 0 && tx->dtype == MDY_S8) {
        /* int8 maps: the kernels take the codes and the input's quantization */
        const int8_t *maps = (const int8_t *)b.maps;
        switch (op->kind) {
        case MDY_OP_CONV2D:
            if (!MDY_LINKS(MDY_K_CONV2D_NHWC_S8_WGRAD))
                return MDY_ERR_UNSUPPORTED;
            mdy_conv2d_nhwc_s8_wgrad(&op->p.conv, maps, tx->zero, tx->scale, ch, n, dy, b.slices);
            break;
        case MDY_OP_DEPTHWISE_CONV2D:
            if (!MDY_LINKS(MDY_K_DEPTHWISE_CONV2D_NHWC_S8_WGRAD))
                return MDY_ERR_UNSUPPORTED;
            mdy_depthwise_conv2d_nhwc_s8_wgrad(&op->p.conv, maps, tx->zero, tx->scale, ch, n, dy,
                                               b.slices);
            break;
        default:
            if (!MDY_LINKS(MDY_K_FULLY_CONNECTED_S8_WGRAD))
                return MDY_ERR_UNSUPPORTED;
            mdy_fully_connected_s8_wgrad(op->p.conv.in_c, op->p.conv.out_c, maps, tx->zero,
                                         tx->scale, ch, n, dy, b.slices);
            break;
        }
    } else if (b.count > 0) {
        const float *maps = (const float *)(const void *)b.maps;
        switch (op->kind) {
        case MDY_OP_CONV2D:
            if (!MDY_LINKS(MDY_K_CONV2D_NHWC_F32_WGRAD))
                return MDY_ERR_UNSUPPORTED;
            mdy_conv2d_nhwc_f32_wgrad(&op->p.conv, maps, ch, n, dy, b.slices);
            break;
        case MDY_OP_DEPTHWISE_CONV2D:
            if (!MDY_LINKS(MDY_K_DEPTHWISE_CONV2D_NHWC_F32_WGRAD))
                return MDY_ERR_UNSUPPORTED;
            mdy_depthwise_conv2d_nhwc_f32_wgrad(&op->p.conv, maps, ch, n, dy, b.slices);
            break;
        default: /* FULLY_CONNECTED: maps are one value each */
            if (!MDY_LINKS(MDY_K_FULLY_CONNECTED_F32_WGRAD))
                return MDY_ERR_UNSUPPORTED;
            mdy_fully_connected_f32_wgrad(op->p.conv.in_c, op->p.conv.out_c, maps, ch, n, dy,
                                          b.slices);
            break;
        }
    }
    if (l->train_bias)
        mdy_bias_grad_nhwc_f32(op->p.conv.out_h * op->p.conv.out_w, op->p.conv.out_c, dy,
                               (float *)(void *)(ctx->arena + l->bias_grad_offset));
    return MDY_OK;
}

static mdy_status input_grad(const mdy_ctx *ctx, const mdy_op *op, int j, const float *dy)
{
    const mdy_model *m = ctx->model;
    const mdy_tensor *ty = &m->tensors[op->output];
    const uint8_t *st = op->saved_offset == MDY_NO_OFFSET ? (const uint8_t *)0
                                                          : ctx->arena + op->saved_offset;
    float *dx = mdy_grad(ctx, op->input[j]);
    int acc = op->grad_accumulate[j];
    int32_t n = mdy_numel(ty);

    if (!dx)
        return MDY_OK; /* nothing below needs it */
    /* int8 ops whose derivative needs their int8 weights or saved codes; every
     * other op's backward is the fp32 kernel's on real-unit gradients. */
    if (mdy_op_is_s8(ctx, op))
        switch (op->kind) {
        case MDY_OP_CONV2D:
            if (!MDY_LINKS(MDY_K_CONV2D_NHWC_S8_IGRAD))
                return MDY_ERR_UNSUPPORTED;
            mdy_conv2d_nhwc_s8_igrad(&op->p.conv, (const int8_t *)op->weight, op->w_scales, dy, dx,
                                     acc);
            return MDY_OK;
        case MDY_OP_DEPTHWISE_CONV2D:
            if (!MDY_LINKS(MDY_K_DEPTHWISE_CONV2D_NHWC_S8_IGRAD))
                return MDY_ERR_UNSUPPORTED;
            mdy_depthwise_conv2d_nhwc_s8_igrad(&op->p.conv, (const int8_t *)op->weight,
                                               op->w_scales, dy, dx, acc);
            return MDY_OK;
        case MDY_OP_FULLY_CONNECTED:
            if (!MDY_LINKS(MDY_K_FULLY_CONNECTED_S8_IGRAD))
                return MDY_ERR_UNSUPPORTED;
            mdy_fully_connected_s8_igrad(op->p.conv.in_c, op->p.conv.out_c,
                                         (const int8_t *)op->weight, op->w_scales, dy, dx, acc);
            return MDY_OK;
        case MDY_OP_HARDSWISH: {
            const mdy_tensor *tx = &m->tensors[op->input[0]];
            if (!st)
                return MDY_ERR_ARG;
            mdy_hardswish_s8_igrad(n, (const int8_t *)st, tx->scale, tx->zero, dy, dx, acc);
            return MDY_OK;
        }
        case MDY_OP_MUL_CHANNEL: {
            const mdy_tensor *tx = &m->tensors[op->input[0]];
            const mdy_tensor *ts = &m->tensors[op->input[1]];
            const int8_t *xs = (const int8_t *)st;
            if (!st)
                return MDY_ERR_ARG;
            if (j == 0)
                mdy_mul_channel_nhwc_s8_igrad_x(ty->h * ty->w, ty->c, xs + n, ts->scale, ts->zero,
                                                dy, dx, acc);
            else
                mdy_mul_channel_nhwc_s8_igrad_s(ty->h * ty->w, ty->c, xs, tx->scale, tx->zero, dy,
                                                dx, acc);
            return MDY_OK;
        }
        default:
            break;
        }
    switch (op->kind) {
    case MDY_OP_CONV2D:
        if (!MDY_LINKS(MDY_K_CONV2D_NHWC_F32_IGRAD))
            return MDY_ERR_UNSUPPORTED;
        mdy_conv2d_nhwc_f32_igrad(&op->p.conv, op->weight, dy, dx, acc);
        break;
    case MDY_OP_DEPTHWISE_CONV2D:
        if (!MDY_LINKS(MDY_K_DEPTHWISE_CONV2D_NHWC_F32_IGRAD))
            return MDY_ERR_UNSUPPORTED;
        mdy_depthwise_conv2d_nhwc_f32_igrad(&op->p.conv, op->weight, dy, dx, acc);
        break;
    case MDY_OP_FULLY_CONNECTED:
        if (!MDY_LINKS(MDY_K_FULLY_CONNECTED_F32_IGRAD))
            return MDY_ERR_UNSUPPORTED;
        mdy_fully_connected_f32_igrad(op->p.conv.in_c, op->p.conv.out_c, op->weight, dy, dx, acc);
        break;
    case MDY_OP_DEQUANTIZE:
        /* real-unit gradients: the dequantization passes them straight through */
        mdy_add_f32_igrad(n, dy, dx, acc);
        break;
    case MDY_OP_CLAMP:
        if (!st)
            return MDY_ERR_ARG;
        mdy_clamp_f32_igrad(n, st, dy, dx, acc);
        break;
    case MDY_OP_HARDSIGMOID:
        if (!st)
            return MDY_ERR_ARG;
        mdy_hardsigmoid_f32_igrad(n, st, op->p.hsig.alpha, dy, dx, acc);
        break;
    case MDY_OP_HARDSWISH:
        if (!st)
            return MDY_ERR_ARG;
        mdy_hardswish_f32_igrad(n, (const float *)(const void *)st, dy, dx, acc);
        break;
    case MDY_OP_ADD:
        mdy_add_f32_igrad(n, dy, dx, acc);
        break;
    case MDY_OP_MUL_CHANNEL: {
        const float *xs = (const float *)(const void *)st;
        if (!st)
            return MDY_ERR_ARG;
        if (j == 0)
            mdy_mul_channel_nhwc_f32_igrad_x(ty->h * ty->w, ty->c, xs + n, dy, dx, acc);
        else
            mdy_mul_channel_nhwc_f32_igrad_s(ty->h * ty->w, ty->c, xs, dy, dx, acc);
        break;
    }
    case MDY_OP_GLOBAL_AVGPOOL: {
        const mdy_tensor *tx = &m->tensors[op->input[0]];
        mdy_global_avgpool_nhwc_f32_igrad(tx->h, tx->w, tx->c, dy, dx, acc);
        break;
    }
    case MDY_OP_AVGPOOL:
        mdy_avgpool_nhwc_f32_igrad(&op->p.pool, dy, dx, acc);
        break;
    case MDY_OP_MAXPOOL:
        if (!st)
            return MDY_ERR_ARG;
        mdy_maxpool_nhwc_f32_igrad(&op->p.pool, st, dy, dx, acc);
        break;
    case MDY_OP_CONCAT:
        mdy_concat_channels_nhwc_f32_igrad(ty->h * ty->w, m->tensors[op->input[0]].c,
                                           m->tensors[op->input[1]].c, j, dy, dx, acc);
        break;
    case MDY_OP_RESHAPE:
        break; /* gradient buffer aliased by the planner */
    default:
        return MDY_ERR_UNSUPPORTED;
    }
    return MDY_OK;
}

mdy_status mdy_train_backward(mdy_ctx *ctx, int32_t label, int32_t batch)
{
    const mdy_model *m;
    const float *logits;
    float loss;
    int32_t i;

    if (!ctx || batch <= 0)
        return MDY_ERR_ARG;
    m = ctx->model;
    if (label < 0 || label >= m->classes)
        return MDY_ERR_LABEL;

    logits = mdy_value(ctx, m->output);
    ctx->correct += (mdy_argmax_f32(m->classes, logits) == label);
    ctx->seen++;

    /* The planner always gives the logits a gradient buffer, so the loss is
     * computed the same way whether or not anything trains. */
    loss = mdy_softmax_xent_f32(m->classes, logits, label, 1.0f / (float)batch,
                                mdy_grad(ctx, m->output));
    ctx->loss_sum += loss;
    if (!isfinite(loss))
        ctx->nonfinite++;

    for (i = (int32_t)m->n_ops - 1; i >= (int32_t)ctx->first_op; i--) {
        const mdy_op *op = &m->ops[i];
        const float *dy = mdy_grad(ctx, op->output);
        int j;
        if (!dy)
            continue; /* output does not reach the loss through anything trained */
        if (op->layer != MDY_NONE) {
            mdy_status st = layer_grads(ctx, op, dy);
            if (st != MDY_OK)
                return st;
        }
        if (i == (int32_t)ctx->first_op)
            break; /* deepest trained op: its input gradient is never used */
        for (j = 0; j < 2 && op->input[j] != MDY_NONE; j++) {
            mdy_status st = input_grad(ctx, op, j, dy);
            if (st != MDY_OK)
                return st;
        }
    }
    return MDY_OK;
}
