/* Shared by the runtime's files only; not part of the public API. */
#ifndef MDY_RUNTIME_INTERNAL_H
#define MDY_RUNTIME_INTERNAL_H

#include "medyate.h"

/* Where one layer's selected channels live in the pool. */
typedef struct {
    uint32_t first;   /* index of the layer's first entry in the selection */
    uint32_t count;   /* its number of selected channels */
    float *slices;    /* count * slice_size weight-gradient floats */
    uint8_t *maps;    /* count * map_size saved input values (floats or int8 codes) */
} mdy_block;

uint16_t *mdy_sel_channels(const mdy_ctx *ctx);
uint16_t *mdy_sel_layers(const mdy_ctx *ctx);
float *mdy_stats(const mdy_ctx *ctx);
mdy_block mdy_layer_block(const mdy_ctx *ctx, uint16_t layer);

static inline void *mdy_value_ptr(const mdy_ctx *ctx, uint16_t t)
{
    if (t == ctx->model->input)
        return (void *)(uintptr_t)ctx->input; /* read-only in practice: no op writes the input */
    return (void *)(ctx->arena + ctx->model->tensors[t].offset);
}

static inline float *mdy_value(const mdy_ctx *ctx, uint16_t t)
{
    return (float *)mdy_value_ptr(ctx, t);
}

static inline int8_t *mdy_value_s8(const mdy_ctx *ctx, uint16_t t)
{
    return (int8_t *)mdy_value_ptr(ctx, t);
}

/* Whether an op runs the int8 kernels (see mdy_op). */
static inline int mdy_op_is_s8(const mdy_ctx *ctx, const mdy_op *op)
{
    return op->kind == MDY_OP_DEQUANTIZE ||
           ctx->model->tensors[op->output].dtype == MDY_S8;
}

static inline uint8_t *mdy_scratch(const mdy_ctx *ctx, const mdy_op *op)
{
    return op->scratch_offset == MDY_NO_OFFSET ? (uint8_t *)0 : ctx->arena + op->scratch_offset;
}

/* The int8 forward of one op (mdy_forward_s8.c); st: its backward state or NULL. */
mdy_status mdy_forward_op_s8(const mdy_ctx *ctx, const mdy_op *op, uint8_t *st);
/* Bytes of scratch the op's kernel needs (its *_get_buffer_size). */
int32_t mdy_op_scratch_need(const mdy_ctx *ctx, const mdy_op *op);

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
