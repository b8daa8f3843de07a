/*
 * Forward pass over the planned op list. In training mode it also stores
 * what backward needs: each op's backward state (masks, copies) at its
 * planned offset, and the input maps of the selected channels in the pool.
 */
#include "mdy_runtime_internal.h"
#include "mdy_kernel_set.h"

#include <string.h>

mdy_status mdy_init(mdy_ctx *ctx, const mdy_model *model, uint8_t *arena)
{
    if (!ctx || !model || !arena)
        return MDY_ERR_ARG;
    memset(ctx, 0, sizeof(*ctx));
    ctx->model = model;
    ctx->arena = arena;
    ctx->first_op = model->n_ops;
    /* Any fixed nonzero seed gives host and device the same draws; the model
     * hash makes it the plan's. */
    ctx->rng = model->hash != 0u ? model->hash : 0x9E3779B9u;
    {
        uint16_t i;
        /* The planner sized each op's scratch; refuse a plan whose sizes are
         * not the kernels' own (*_get_buffer_size). */
        for (i = 0; i < model->n_ops; i++) {
            const mdy_op *op = &model->ops[i];
            int32_t need = mdy_op_scratch_need(ctx, op);
            if (need > 0 && (op->scratch_offset == MDY_NO_OFFSET ||
                             op->scratch_size < (uint32_t)need))
                return MDY_ERR_ARG;
        }
    }
    mdy_reset_stats(ctx);
    return MDY_OK;
}

uint32_t mdy_input_bytes(const mdy_model *model)
{
    const mdy_tensor *t = &model->tensors[model->input];
    return (uint32_t)mdy_numel(t) * (t->dtype == MDY_S8 ? 1u : (uint32_t)sizeof(float));
}

void *mdy_input_buffer(const mdy_ctx *ctx)
{
    uint32_t off = ctx->model->tensors[ctx->model->input].offset;
    return off == MDY_NO_OFFSET ? (void *)0 : (void *)(ctx->arena + off);
}

void mdy_input_from_f32(const mdy_model *model, const float *x, uint32_t first, uint32_t n,
                        void *buf)
{
    const mdy_tensor *t = &model->tensors[model->input];
    if (t->dtype == MDY_S8)
        mdy_quantize_f32_s8((int32_t)n, x, t->scale, t->zero, (int8_t *)buf + first);
    else
        memcpy((float *)buf + first, x, (size_t)n * sizeof(float));
}

/* NHWC -> channel-planar copy of the selected channels' input maps (the int8
 * codes themselves on the int8 path: 1 byte per element). */
static void save_selected_maps(const mdy_ctx *ctx, const mdy_op *op)
{
    const mdy_tensor *t = &ctx->model->tensors[op->input[0]];
    mdy_block b = mdy_layer_block(ctx, op->layer);
    const uint16_t *ch = mdy_sel_channels(ctx) + b.first;
    int32_t hw = t->h * t->w, c = t->c;
    uint32_t k;
    if (t->dtype == MDY_S8) {
        const int8_t *x = mdy_value_s8(ctx, op->input[0]);
        int8_t *maps = (int8_t *)b.maps;
        for (k = 0; k < b.count; k++) {
            int8_t *map = maps + k * (uint32_t)hw;
            const int8_t *src = x + ch[k];
            int32_t i;
            for (i = 0; i < hw; i++)
                map[i] = src[i * c];
        }
        return;
    }
    {
        const float *x = mdy_value(ctx, op->input[0]);
        float *maps = (float *)(void *)b.maps;
        for (k = 0; k < b.count; k++) {
            float *map = maps + k * (uint32_t)hw;
            const float *src = x + ch[k];
            int32_t i;
            for (i = 0; i < hw; i++)
                map[i] = src[i * c];
        }
    }
}

static uint8_t *saved(const mdy_ctx *ctx, const mdy_op *op, int training)
{
    if (!training || op->saved_offset == MDY_NO_OFFSET)
        return (uint8_t *)0;
    return ctx->arena + op->saved_offset;
}

static mdy_status run_forward(mdy_ctx *ctx, int training)
{
    const mdy_model *m = ctx->model;
    uint16_t i;

    for (i = 0; i < m->n_ops; i++) {
        const mdy_op *op = &m->ops[i];
        const mdy_tensor *ty = &m->tensors[op->output];
        float *x = mdy_value(ctx, op->input[0]);
        float *y = mdy_value(ctx, op->output);
        uint8_t *st = saved(ctx, op, training);
        int32_t n = mdy_numel(ty);

        if (training && op->layer != MDY_NONE)
            save_selected_maps(ctx, op);
        if (mdy_op_is_s8(ctx, op)) {
            mdy_status s8 = mdy_forward_op_s8(ctx, op, st);
            if (s8 != MDY_OK)
                return s8;
            continue;
        }

        switch (op->kind) {
        case MDY_OP_CONV2D:
            if (!MDY_LINKS(MDY_K_CONV2D_NHWC_F32))
                return MDY_ERR_UNSUPPORTED;
            mdy_conv2d_nhwc_f32(&op->p.conv, x, op->weight, op->bias, y);
            break;
        case MDY_OP_DEPTHWISE_CONV2D:
            if (!MDY_LINKS(MDY_K_DEPTHWISE_CONV2D_NHWC_F32))
                return MDY_ERR_UNSUPPORTED;
            mdy_depthwise_conv2d_nhwc_f32(&op->p.conv, x, op->weight, op->bias, y);
            break;
        case MDY_OP_FULLY_CONNECTED:
            if (!MDY_LINKS(MDY_K_FULLY_CONNECTED_F32))
                return MDY_ERR_UNSUPPORTED;
            mdy_fully_connected_f32(op->p.conv.in_c, op->p.conv.out_c, x, op->weight, op->bias, y);
            break;
        case MDY_OP_CLAMP:
            mdy_clamp_f32(n, x, op->p.clamp.lo, op->p.clamp.hi, y, st);
            break;
        case MDY_OP_HARDSIGMOID:
            mdy_hardsigmoid_f32(n, x, op->p.hsig.alpha, op->p.hsig.beta, y, st);
            break;
        case MDY_OP_HARDSWISH:
            if (st) /* backward needs x; y may overwrite it in place */
                memcpy(st, x, (size_t)n * sizeof(float));
            mdy_hardswish_f32(n, x, y);
            break;
        case MDY_OP_ADD:
            mdy_add_f32(n, x, mdy_value(ctx, op->input[1]), y);
            break;
        case MDY_OP_MUL_CHANNEL: {
            const float *s = mdy_value(ctx, op->input[1]);
            if (st) { /* [x copy][s copy]: dx needs s, ds needs x */
                memcpy(st, x, (size_t)n * sizeof(float));
                memcpy(st + (size_t)n * sizeof(float), s, (size_t)ty->c * sizeof(float));
            }
            mdy_mul_channel_nhwc_f32(ty->h * ty->w, ty->c, x, s, y);
            break;
        }
        case MDY_OP_GLOBAL_AVGPOOL: {
            const mdy_tensor *tx = &m->tensors[op->input[0]];
            mdy_global_avgpool_nhwc_f32(tx->h, tx->w, tx->c, x, y);
            break;
        }
        case MDY_OP_AVGPOOL:
            mdy_avgpool_nhwc_f32(&op->p.pool, x, y);
            break;
        case MDY_OP_MAXPOOL:
            mdy_maxpool_nhwc_f32(&op->p.pool, x, y, st);
            break;
        case MDY_OP_CONCAT: {
            const mdy_tensor *ta = &m->tensors[op->input[0]];
            const mdy_tensor *tb = &m->tensors[op->input[1]];
            mdy_concat_channels_nhwc_f32(ty->h * ty->w, ta->c, tb->c, x,
                                         mdy_value(ctx, op->input[1]), y);
            break;
        }
        case MDY_OP_RESHAPE:
            /* planned as an alias: same bytes, nothing to do */
            break;
        case MDY_OP_SOFTMAX:
            mdy_softmax_f32(n, x, y);
            break;
        default:
            return MDY_ERR_UNSUPPORTED;
        }
    }
    return MDY_OK;
}

mdy_status mdy_forward(mdy_ctx *ctx, const void *input, float *out)
{
    mdy_status st;
    if (!ctx || !input)
        return MDY_ERR_ARG;
    ctx->input = input;
    st = run_forward(ctx, 0);
    if (st == MDY_OK && out)
        memcpy(out, mdy_value(ctx, ctx->model->output),
               (size_t)ctx->model->classes * sizeof(float));
    return st;
}

mdy_status mdy_train_forward(mdy_ctx *ctx, const void *input)
{
    if (!ctx || !input)
        return MDY_ERR_ARG;
    ctx->input = input;
    return run_forward(ctx, 1);
}

mdy_status mdy_train_sample(mdy_ctx *ctx, const void *input, int32_t label, int32_t batch)
{
    mdy_status st = mdy_train_forward(ctx, input);
    if (st != MDY_OK)
        return st;
    return mdy_train_backward(ctx, label, batch);
}
