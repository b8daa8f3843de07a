/*
 * The epoch: a sequence of samples trained in mini-batches, and the
 * evaluation of one sample. This is the only place that decides where a
 * mini-batch ends, how a last short one is scaled and when SGD steps, so the
 * host simulation (through cffi), QEMU and the board cannot drift apart.
 */
#include "mdy_runtime_internal.h"

#include <math.h>
#include <string.h>

int32_t mdy_argmax_f32(int32_t n, const float *x)
{
    int32_t i, best = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static uint64_t now(const mdy_ctx *ctx)
{
    return ctx->clock ? ctx->clock() : 0u;
}

mdy_status mdy_train_epoch_sample(mdy_ctx *ctx, const mdy_epoch *ep, uint32_t i,
                                  const void *x, int32_t label)
{
    uint32_t b0, size;
    uint64_t t0, t1, t2;
    mdy_status st;

    if (!ctx || !ep || !x || ep->batch == 0 || i >= ep->count || !isfinite(ep->lr))
        return MDY_ERR_ARG;
    /* Mini-batches are [0, batch), [batch, 2 batch), ...; the last one holds
     * what is left and its gradients are scaled by 1/its own size, so every
     * step is a mean over the samples it saw. */
    b0 = i - i % ep->batch;
    size = ep->count - b0 < ep->batch ? ep->count - b0 : ep->batch;

    t0 = now(ctx);
    st = mdy_train_forward(ctx, x);
    t1 = now(ctx);
    if (st == MDY_OK)
        st = mdy_train_backward(ctx, label, (int32_t)size);
    t2 = now(ctx);
    ctx->cycles_forward += t1 - t0;
    ctx->cycles_backward += t2 - t1;
    if (st != MDY_OK || i + 1 != b0 + size)
        return st;
    st = mdy_sgd_step(ctx, ep->lr);
    ctx->cycles_update += now(ctx) - t2;
    return st;
}

mdy_status mdy_train_epoch(mdy_ctx *ctx, const mdy_epoch *ep, mdy_sample_fn sample,
                           mdy_progress_fn progress, void *user)
{
    uint32_t i;
    if (!ctx || !ep || !sample)
        return MDY_ERR_ARG;
    for (i = 0; i < ep->count; i++) {
        int32_t label = -1;
        const void *x = sample(user, i, &label);
        mdy_status st = mdy_train_epoch_sample(ctx, ep, i, x, label);
        if (st != MDY_OK)
            return st;
        if (progress)
            progress(user, i + 1);
    }
    return MDY_OK;
}

mdy_status mdy_eval_sample(mdy_ctx *ctx, const void *x, int32_t label, mdy_eval_stats *acc,
                           float *logits)
{
    const mdy_model *m;
    const float *z;
    float loss;
    mdy_status st;

    if (!ctx || !acc)
        return MDY_ERR_ARG;
    m = ctx->model;
    if (label < 0 || label >= m->classes)
        return MDY_ERR_LABEL;
    st = mdy_forward(ctx, x, logits);
    if (st != MDY_OK)
        return st;
    z = mdy_value(ctx, m->output);
    /* the training loss (mdy_train_backward), without touching any gradient */
    loss = mdy_softmax_xent_f32(m->classes, z, label, 0.0f, (float *)0);
    acc->loss_sum += loss;
    acc->correct += (mdy_argmax_f32(m->classes, z) == label);
    acc->count++;
    if (!isfinite(loss))
        acc->nonfinite++;
    return MDY_OK;
}
