/*
 * Training and its statistics: RUN_EPOCH (an epoch over the dataset image),
 * TRAIN_STREAM and TRAIN_STREAM_S8 (one sample of an epoch from the link, as
 * floats or an int8 model's codes) and GET_STATS. The
 * epoch itself (mini-batches, SGD steps, loss) is the runtime's
 * (mdy_train_epoch, mdy_train_epoch_sample); this only parses, checks and
 * answers.
 */
#include <math.h>

#include "mdy_request.h"
#include "mdy_board.h"

void mdy_stats_reset(mdy_device *d)
{
    mdy_reset_stats(&d->ctx);
    d->cycles_total = 0;
}

/* Mini-batch size and learning rate, as both epoch requests carry them. */
static int epoch_check(const mdy_epoch *ep, const char **why)
{
    if (ep->batch == 0) {
        *why = "batch must be >= 1";
        return MDY_PERR_BAD_FIELD;
    }
    if (!isfinite(ep->lr)) {
        *why = "lr is not finite";
        return MDY_PERR_BAD_FIELD;
    }
    return 0;
}

/* STATS with the channel statistics [offset, offset+count). */
static uint16_t stats_answer(mdy_device *d, uint32_t offset, uint32_t count)
{
    uint8_t *p = mdy_answer_payload(d);
    const mdy_ctx *ctx = &d->ctx;
    const float *cs = mdy_channel_stats(&d->ctx);
    uint32_t k;
    mdy_wr_f32(p + MDY_STATS_LOSS_SUM, ctx->loss_sum);
    mdy_wr32(p + MDY_STATS_CORRECT, ctx->correct);
    mdy_wr32(p + MDY_STATS_SEEN, ctx->seen);
    mdy_wr32(p + MDY_STATS_STEPS, ctx->steps);
    mdy_wr64(p + MDY_STATS_CYCLES_FORWARD, ctx->cycles_forward);
    mdy_wr64(p + MDY_STATS_CYCLES_BACKWARD, ctx->cycles_backward);
    mdy_wr64(p + MDY_STATS_CYCLES_UPDATE, ctx->cycles_update);
    mdy_wr64(p + MDY_STATS_CYCLES_TOTAL, d->cycles_total);
    mdy_wr32(p + MDY_STATS_STACK_HIGH_WATER, board_stack_high_water());
    mdy_wr32(p + MDY_STATS_N_SELECTED, ctx->n_selected);
    mdy_wr32(p + MDY_STATS_OFFSET, offset);
    mdy_wr32(p + MDY_STATS_NONFINITE, ctx->nonfinite);
    for (k = 0; k < count; k++)
        mdy_wr_f32(p + MDY_STATS_SIZE + MDY_STATS_TAIL * k, cs[offset + k]);
    return mdy_answer(d, MDY_MSG_STATS, (uint16_t)(MDY_STATS_SIZE + MDY_STATS_TAIL * count));
}

/* The epoch of a RUN_EPOCH: samples start + perm[i] of one split of the
 * dataset image, for mdy_train_epoch. */
typedef struct {
    mdy_device *d;
    uint32_t split, start, count;
} epoch_source;

static const void *epoch_sample(void *user, uint32_t i, int32_t *label)
{
    const epoch_source *e = (const epoch_source *)user;
    return mdy_dataset_sample(e->d, e->split, e->start + e->d->io.perm[i], label);
}

static void epoch_progress(void *user, uint32_t done)
{
    const epoch_source *e = (const epoch_source *)user;
    if (done % MDY_PROTO_PROGRESS_EVERY == 0 && done < e->count)
        mdy_send_progress(e->d, done, e->count, e->d->ctx.loss_sum, e->d->ctx.correct);
}

uint16_t mdy_req_run_epoch(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint8_t split, flags;
    uint32_t start, count, seed, page;
    const char *why = "";
    int e;
    uint64_t t_start;
    mdy_epoch ep;
    epoch_source src;
    mdy_status st;

    MDY_NEED_LEN(d, len, RUN_EPOCH);
    split = p[MDY_RUN_EPOCH_SPLIT];
    flags = p[MDY_RUN_EPOCH_FLAGS];
    ep.batch = mdy_rd16(p + MDY_RUN_EPOCH_BATCH);
    start = mdy_rd32(p + MDY_RUN_EPOCH_START);
    count = mdy_rd32(p + MDY_RUN_EPOCH_COUNT);
    ep.lr = mdy_rd_f32(p + MDY_RUN_EPOCH_LR);
    seed = mdy_rd32(p + MDY_RUN_EPOCH_SEED);
    page = mdy_rd16(p + MDY_RUN_EPOCH_PAGE);
    ep.count = count;
    if ((e = mdy_dataset_range(d, split, start, count, &why)) != 0)
        return mdy_fail(d, e, why);
    if (count > MDY_PROTO_MAX_EPOCH_SAMPLES)
        return mdy_fail(d, MDY_PERR_BAD_FIELD, "count above max_epoch");
    if ((e = epoch_check(&ep, &why)) != 0)
        return mdy_fail(d, e, why);
    if (flags & ~(uint32_t)MDY_EPOCH_KEEP_STATS)
        return mdy_fail(d, MDY_PERR_BAD_FIELD, "unknown flags");
    if (page > MDY_MAX_ITEMS(STATS))
        page = MDY_MAX_ITEMS(STATS);
    if (page > d->ctx.n_selected)
        page = d->ctx.n_selected;

    /* From here the receive and answer buffers hold the permutation. */
    mdy_epoch_order(d->io.perm, count, seed);
    /* An epoch starts: statistics from zero, the rounding's draws from the
     * epoch's seed (a part of a split epoch goes on with both). */
    if (!(flags & MDY_EPOCH_KEEP_STATS)) {
        mdy_stats_reset(d);
        mdy_seed_rounding(&d->ctx, seed);
    }
    src.d = d;
    src.split = split;
    src.start = start;
    src.count = count;
    t_start = board_cycles();
    st = mdy_train_epoch(&d->ctx, &ep, epoch_sample, epoch_progress, &src);
    d->cycles_total += board_cycles() - t_start;
    if (st != MDY_OK)
        return mdy_fail(d, st, MDY_ENGINE_ERROR " during the epoch");
    return stats_answer(d, 0, page);
}

/* TRAIN_STREAM (floats) and TRAIN_STREAM_S8 (int8 codes): the same fixed
 * fields, `items` elements at the end of the payload. */
static uint16_t train_stream(mdy_device *d, const uint8_t *p, uint32_t items, int codes)
{
    uint32_t index;
    int32_t label;
    mdy_epoch ep;
    mdy_status st;
    const char *why = "";
    int e;
    uint64_t t0;
    if ((e = mdy_stream_check(d, items, codes, &why)) != 0)
        return mdy_fail(d, e, why);
    ep.batch = mdy_rd16(p + MDY_TRAIN_STREAM_BATCH);
    index = mdy_rd32(p + MDY_TRAIN_STREAM_INDEX);
    ep.count = mdy_rd32(p + MDY_TRAIN_STREAM_COUNT);
    label = (int32_t)mdy_rd32(p + MDY_TRAIN_STREAM_LABEL);
    ep.lr = mdy_rd_f32(p + MDY_TRAIN_STREAM_LR);
    if ((e = epoch_check(&ep, &why)) != 0)
        return mdy_fail(d, e, why);
    if (index >= ep.count)
        return mdy_fail(d, MDY_PERR_BAD_FIELD, "index must be below count");
    if (label < 0 || label >= d->model->classes)
        return mdy_fail(d, MDY_ERR_LABEL, "label outside [0, classes)");
    if (index == 0) {
        mdy_stats_reset(d);
        mdy_seed_rounding(&d->ctx, mdy_rd32(p + MDY_TRAIN_STREAM_SEED));
    }
    t0 = board_cycles();
    st = mdy_train_epoch_sample(&d->ctx, &ep, index,
                                mdy_stream_sample(d, p + MDY_TRAIN_STREAM_SIZE, items, codes),
                                label);
    d->cycles_total += board_cycles() - t0;
    if (st != MDY_OK)
        return mdy_fail(d, st, MDY_ENGINE_ERROR);
    return stats_answer(d, 0, 0);
}

/* The two layouts agree but for the element size. */
typedef char stream_layouts_agree_[(MDY_TRAIN_STREAM_SIZE == MDY_TRAIN_STREAM_S8_SIZE &&
                                    MDY_TRAIN_STREAM_LR == MDY_TRAIN_STREAM_S8_LR &&
                                    MDY_TRAIN_STREAM_LABEL == MDY_TRAIN_STREAM_S8_LABEL &&
                                    MDY_TRAIN_STREAM_SEED == MDY_TRAIN_STREAM_S8_SEED &&
                                    MDY_TRAIN_STREAM_S8_TAIL == 1) ? 1 : -1];

uint16_t mdy_req_train_stream(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items;
    MDY_NEED_TAIL(d, len, TRAIN_STREAM, items);
    return train_stream(d, p, items, 0);
}

uint16_t mdy_req_train_stream_s8(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items;
    MDY_NEED_TAIL(d, len, TRAIN_STREAM_S8, items);
    return train_stream(d, p, items, 1);
}

uint16_t mdy_req_get_stats(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t off, count;
    MDY_NEED_LEN(d, len, GET_STATS);
    off = mdy_rd32(p + MDY_GET_STATS_OFFSET);
    count = mdy_rd32(p + MDY_GET_STATS_COUNT);
    if (count > MDY_MAX_ITEMS(STATS))
        count = MDY_MAX_ITEMS(STATS);
    if (off > d->ctx.n_selected)
        return mdy_fail(d, MDY_PERR_BAD_FIELD, "GET_STATS: offset beyond the selection");
    if (count > d->ctx.n_selected - off)
        count = d->ctx.n_selected - off;
    return stats_answer(d, off, count);
}
