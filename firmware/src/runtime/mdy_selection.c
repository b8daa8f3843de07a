/*
 * Channel selection: validation, storage in the arena, and the run-time
 * layout of the channel pool.
 *
 * The selection is stored struct-of-arrays (channels, then layers) so that a
 * layer's channel indices are one contiguous uint16 run the wgrad kernels take
 * as-is. The pool holds, layer after layer in selection order, the layer's
 * weight-gradient slices and then its saved input maps; its size is the
 * budget, so any selection whose cost fits the budget fits the pool.
 */
#include "mdy_runtime_internal.h"

#include <string.h>

uint16_t *mdy_sel_channels(const mdy_ctx *ctx)
{
    return (uint16_t *)(void *)(ctx->arena + ctx->model->sel_offset);
}

uint16_t *mdy_sel_layers(const mdy_ctx *ctx)
{
    return mdy_sel_channels(ctx) + ctx->model->max_selected;
}

float *mdy_stats(const mdy_ctx *ctx)
{
    return (float *)(void *)(ctx->arena + ctx->model->stats_offset);
}

/* Words (4 bytes) one selected channel takes in the pool: its fp32 slice and
 * its saved map (fp32, or int8 codes rounded up to whole words). */
static uint32_t entry_cost(const mdy_layer *l)
{
    return (uint32_t)l->slice_size + (uint32_t)l->map_words;
}

mdy_block mdy_layer_block(const mdy_ctx *ctx, uint16_t layer)
{
    const mdy_model *m = ctx->model;
    const uint16_t *ls = mdy_sel_layers(ctx);
    float *pool = (float *)(void *)(ctx->arena + m->pool_offset);
    uint32_t k = 0, off = 0;
    mdy_block b;

    while (k < ctx->n_selected && ls[k] < layer) {
        off += entry_cost(&m->layers[ls[k]]);
        k++;
    }
    b.first = k;
    while (k < ctx->n_selected && ls[k] == layer)
        k++;
    b.count = k - b.first;
    b.slices = pool + off;
    b.maps = (uint8_t *)(void *)(b.slices + b.count * (uint32_t)m->layers[layer].slice_size);
    return b;
}

mdy_status mdy_set_selection(mdy_ctx *ctx, const mdy_channel *sel, uint32_t n)
{
    const mdy_model *m;
    uint32_t k, cost = 0;
    uint16_t first;

    if (!ctx || !ctx->model || (n > 0 && !sel))
        return MDY_ERR_ARG;
    m = ctx->model;
    if (n > m->max_selected)
        return MDY_ERR_BUDGET;
    /* Validate everything before touching state: a rejected selection
     * leaves the previous one installed. */
    for (k = 0; k < n; k++) {
        if (sel[k].layer >= m->n_layers)
            return MDY_ERR_RANGE;
        if ((int32_t)sel[k].channel >= m->layers[sel[k].layer].channels)
            return MDY_ERR_RANGE;
        if (k > 0 && (sel[k].layer < sel[k - 1].layer ||
                      (sel[k].layer == sel[k - 1].layer && sel[k].channel <= sel[k - 1].channel)))
            return MDY_ERR_ORDER;
        cost += entry_cost(&m->layers[sel[k].layer]);
        if (cost > m->pool_size / 4u)
            return MDY_ERR_BUDGET;
    }

    {
        uint16_t *ch = mdy_sel_channels(ctx);
        uint16_t *ly = mdy_sel_layers(ctx);
        for (k = 0; k < n; k++) {
            ch[k] = sel[k].channel;
            ly[k] = sel[k].layer;
        }
    }
    ctx->n_selected = n;

    /* Backward must reach the deepest op that trains anything. */
    first = m->n_ops;
    for (k = 0; k < n; k++)
        if (m->layers[sel[k].layer].op < first)
            first = m->layers[sel[k].layer].op;
    for (k = 0; k < m->n_layers; k++)
        if (m->layers[k].train_bias && m->layers[k].op < first)
            first = m->layers[k].op;
    ctx->first_op = first;

    /* Fresh gradients for the new layout; statistics restart with it. */
    memset(ctx->arena + m->pool_offset, 0, m->pool_size);
    mdy_reset_stats(ctx);
    return MDY_OK;
}

void mdy_reset_stats(mdy_ctx *ctx)
{
    memset(mdy_stats(ctx), 0, ctx->model->max_selected * sizeof(float));
    ctx->loss_sum = 0.0f;
    ctx->correct = 0;
    ctx->seen = 0;
    ctx->steps = 0;
    ctx->nonfinite = 0;
    ctx->cycles_forward = ctx->cycles_backward = ctx->cycles_update = 0;
}

const float *mdy_channel_stats(const mdy_ctx *ctx)
{
    return mdy_stats(ctx);
}

float *mdy_slice_grad(const mdy_ctx *ctx, uint32_t k)
{
    const uint16_t *ls = mdy_sel_layers(ctx);
    mdy_block b;
    if (k >= ctx->n_selected)
        return NULL;
    b = mdy_layer_block(ctx, ls[k]);
    return b.slices + (k - b.first) * (uint32_t)ctx->model->layers[ls[k]].slice_size;
}
