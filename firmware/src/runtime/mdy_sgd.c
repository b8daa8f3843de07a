/*
 * SGD without momentum (optimizer state would break the memory budget),
 * applied in place to the selected slices only, then the gradients are
 * zeroed for the next mini-batch. The squared norm of each slice's gradient
 * is added to the per-channel statistics the host uses for importance.
 */
#include "mdy_runtime_internal.h"

#include <math.h>

void mdy_seed_rounding(mdy_ctx *ctx, uint32_t seed)
{
    /* Any nonzero xorshift32 state works; mixing the two words through a few
     * steps keeps nearby seeds from starting nearby streams. */
    uint32_t x = ctx->model->hash ^ (seed * 0x9E3779B9u) ^ 0x85EBCA6Bu;
    int k;
    for (k = 0; k < 4; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x += seed;
    }
    ctx->rng = x != 0u ? x : 0x9E3779B9u;
}

mdy_status mdy_sgd_step(mdy_ctx *ctx, float lr)
{
    const mdy_model *m;
    float *stats;
    uint16_t l;
    int finite = 1;

    if (!ctx)
        return MDY_ERR_ARG;
    m = ctx->model;
    stats = mdy_stats(ctx);
    for (l = 0; l < m->n_layers; l++) {
        const mdy_layer *ly = &m->layers[l];
        const mdy_op *op = &m->ops[ly->op];
        mdy_block b = mdy_layer_block(ctx, l);
        const uint16_t *ch = mdy_sel_channels(ctx) + b.first;
        /* Slice of input channel c: W[:, c] of an OHWI (or [O][I]) weight is
         * strided by in_c; a depthwise slice is contiguous. */
        int depthwise = op->kind == MDY_OP_DEPTHWISE_CONV2D;
        int32_t stride = depthwise ? 1 : op->p.conv.in_c;
        int s8 = m->tensors[op->output].dtype == MDY_S8;
        /* QAS groups of an int8 slice: one run per output channel (dense conv:
         * k_h*k_w taps; fully connected: 1); a depthwise slice is its m output
         * channels. */
        int32_t taps = op->kind == MDY_OP_FULLY_CONNECTED ? 1 : op->p.conv.k_h * op->p.conv.k_w;
        int32_t groups = ly->slice_size / taps;
        uint32_t k;
        for (k = 0; k < b.count; k++) {
            int32_t first = depthwise ? (int32_t)ch[k] * ly->slice_size : (int32_t)ch[k];
            float *g = b.slices + k * (uint32_t)ly->slice_size;
            float g2;
            if (s8)
                g2 = mdy_sgd_slice_s8(groups, taps, (int8_t *)ly->weight + first, stride,
                                      op->w_scales + (depthwise ? (int32_t)ch[k] * groups : 0),
                                      g, lr, &ctx->rng);
            else
                g2 = mdy_sgd_slice_f32(ly->slice_size, (float *)ly->weight + first, stride, g, lr);
            stats[b.first + k] += g2;
            finite &= isfinite(g2) != 0;
        }
        if (ly->train_bias) {
            float *g = (float *)(void *)(ctx->arena + ly->bias_grad_offset);
            float g2 = s8 ? mdy_sgd_bias_s32(op->p.conv.out_c, (int32_t *)ly->bias,
                                             ly->bias_scales, g, lr, &ctx->rng)
                          : mdy_sgd_slice_f32(op->p.conv.out_c, (float *)ly->bias, 1, g, lr);
            finite &= isfinite(g2) != 0;
        }
    }
    /* A NaN/inf squared norm means a NaN/inf (or overflowing) gradient: the
     * weights it touched are gone, and the host must know (rollback). */
    ctx->nonfinite += !finite;
    ctx->steps++;
    return MDY_OK;
}
