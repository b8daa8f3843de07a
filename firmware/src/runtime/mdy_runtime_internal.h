/* Shared by the runtime's files only; not part of the public API. */
#ifndef MDY_RUNTIME_INTERNAL_H
#define MDY_RUNTIME_INTERNAL_H

#include "medyate.h"

/* Where one layer's selected channels live in the pool. */
typedef struct {
    uint32_t first;   /* index of the layer's first entry in the selection */
    uint32_t count;   /* its number of selected channels */
    float *slices;    /* count * slice_size weight-gradient floats */
    float *maps;      /* count * map_size saved input floats */
} mdy_block;

uint16_t *mdy_sel_channels(const mdy_ctx *ctx);
uint16_t *mdy_sel_layers(const mdy_ctx *ctx);
float *mdy_stats(const mdy_ctx *ctx);
mdy_block mdy_layer_block(const mdy_ctx *ctx, uint16_t layer);

static inline float *mdy_value(const mdy_ctx *ctx, uint16_t t)
{
    if (t == ctx->model->input)
        return (float *)(uintptr_t)ctx->input; /* read-only in practice: no op writes the input */
    return (float *)(void *)(ctx->arena + ctx->model->tensors[t].offset);
}

static inline float *mdy_grad(const mdy_ctx *ctx, uint16_t t)
{
    uint32_t off = ctx->model->tensors[t].grad_offset;
    return off == MDY_NO_OFFSET ? (float *)0 : (float *)(void *)(ctx->arena + off);
}

static inline int32_t mdy_numel(const mdy_tensor *t)
{
    return t->h * t->w * t->c;
}

#endif
