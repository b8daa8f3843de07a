/*
 * The int8 forward of one op (docs/ALGORITHM.md, "Training on the int8 graph").
 * Values are int8 codes with their tensor's (scale, zero); the parameters of
 * each kernel were computed on the host (medyate.planner.int8) and arrive in
 * op->quant. In training mode the op also stores its backward state: the
 * clamps' 1-bit masks (from the output codes), the max pool's window indices,
 * and the int8 inputs hard-swish and the squeeze-excite multiply need.
 */
#include "mdy_runtime_internal.h"
#include "mdy_kernel_set.h"

#include <string.h>

int32_t mdy_op_scratch_need(const mdy_ctx *ctx, const mdy_op *op)
{
    const mdy_tensor *tx = &ctx->model->tensors[op->input[0]];
    if (!mdy_op_is_s8(ctx, op))
        return 0;
    switch (op->kind) {
    case MDY_OP_CONV2D:
        return mdy_conv2d_nhwc_s8_get_buffer_size(&op->p.conv);
    case MDY_OP_DEPTHWISE_CONV2D:
        return mdy_depthwise_conv2d_nhwc_s8_get_buffer_size(&op->p.conv);
    case MDY_OP_AVGPOOL:
        return mdy_avgpool_nhwc_s8_get_buffer_size(&op->p.pool);
    case MDY_OP_GLOBAL_AVGPOOL:
        return mdy_global_avgpool_nhwc_s8_get_buffer_size(tx->h, tx->w, tx->c);
    default:
        return 0;
    }
}

mdy_status mdy_forward_op_s8(const mdy_ctx *ctx, const mdy_op *op, uint8_t *st)
{
    const mdy_model *m = ctx->model;
    const mdy_tensor *ty = &m->tensors[op->output];
    const mdy_tensor *tx = &m->tensors[op->input[0]];
    const int8_t *x = mdy_value_s8(ctx, op->input[0]);
    int8_t *y = mdy_value_s8(ctx, op->output);
    int32_t *scratch = (int32_t *)(void *)mdy_scratch(ctx, op);
    int32_t n = mdy_numel(ty);

    switch (op->kind) {
    case MDY_OP_DEQUANTIZE:
        mdy_dequantize_s8_f32(n, x, tx->scale, tx->zero, mdy_value(ctx, op->output));
        break;
    case MDY_OP_CONV2D:
        if (!MDY_LINKS(MDY_K_CONV2D_NHWC_S8))
            return MDY_ERR_UNSUPPORTED;
        mdy_conv2d_nhwc_s8(&op->p.conv, (const mdy_s8_conv_quant *)op->quant, x,
                           (const int8_t *)op->weight, (const int32_t *)op->bias, y);
        break;
    case MDY_OP_DEPTHWISE_CONV2D:
        if (!MDY_LINKS(MDY_K_DEPTHWISE_CONV2D_NHWC_S8))
            return MDY_ERR_UNSUPPORTED;
        mdy_depthwise_conv2d_nhwc_s8(&op->p.conv, (const mdy_s8_conv_quant *)op->quant, x,
                                     (const int8_t *)op->weight, (const int32_t *)op->bias, y);
        break;
    case MDY_OP_FULLY_CONNECTED:
        if (!MDY_LINKS(MDY_K_FULLY_CONNECTED_S8))
            return MDY_ERR_UNSUPPORTED;
        mdy_fully_connected_s8(op->p.conv.in_c, op->p.conv.out_c,
                               (const mdy_s8_conv_quant *)op->quant, x,
                               (const int8_t *)op->weight, (const int32_t *)op->bias, y);
        break;
    case MDY_OP_CLAMP:
        /* The producer usually fused the clamp already; the table is then an
         * identity on its codes, and costs one lookup per element. */
        mdy_table_s8(n, (const int8_t *)op->quant, x, y);
        if (st)
            mdy_clamp_mask_s8(n, y, op->p.clamp.act_min, op->p.clamp.act_max, st);
        break;
    case MDY_OP_HARDSIGMOID:
        mdy_table_s8(n, (const int8_t *)op->quant, x, y);
        if (st) /* linear region: output strictly between the codes of 0 and 1 */
            mdy_clamp_mask_s8(n, y, op->p.hsig.act_min, op->p.hsig.act_max, st);
        break;
    case MDY_OP_HARDSWISH:
        if (st) /* backward needs x; y may overwrite it in place */
            memcpy(st, x, (size_t)n);
        mdy_table_s8(n, (const int8_t *)op->quant, x, y);
        break;
    case MDY_OP_ADD:
        mdy_add_s8(n, (const mdy_s8_add_quant *)op->quant, x, mdy_value_s8(ctx, op->input[1]), y);
        break;
    case MDY_OP_MUL_CHANNEL: {
        const int8_t *s = mdy_value_s8(ctx, op->input[1]);
        if (st) { /* [x codes][s codes]: dx needs s, ds needs x */
            memcpy(st, x, (size_t)n);
            memcpy(st + n, s, (size_t)ty->c);
        }
        mdy_mul_channel_nhwc_s8(ty->h * ty->w, ty->c, (const mdy_s8_mul_quant *)op->quant, x, s, y);
        break;
    }
    case MDY_OP_GLOBAL_AVGPOOL:
        mdy_global_avgpool_nhwc_s8(tx->h, tx->w, tx->c, (const mdy_s8_rescale *)op->quant, x, y,
                                   scratch);
        break;
    case MDY_OP_AVGPOOL:
        mdy_avgpool_nhwc_s8(&op->p.pool, (const mdy_s8_rescale *)op->quant, x, y, scratch);
        break;
    case MDY_OP_MAXPOOL:
        mdy_maxpool_nhwc_s8(&op->p.pool, (const mdy_s8_rescale *)op->quant, x, y, st);
        break;
    case MDY_OP_CONCAT: {
        const mdy_s8_rescale *q = (const mdy_s8_rescale *)op->quant;
        mdy_concat_channels_nhwc_s8(ty->h * ty->w, tx->c, m->tensors[op->input[1]].c, &q[0], &q[1],
                                    x, mdy_value_s8(ctx, op->input[1]), y);
        break;
    }
    case MDY_OP_RESHAPE:
        break; /* planned as an alias */
    default:
        return MDY_ERR_UNSUPPORTED;
    }
    return MDY_OK;
}
