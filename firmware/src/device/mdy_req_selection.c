/*
 * The trained channels: a selection arrives in chunks (SEL_BEGIN, SEL_CHUNK,
 * SEL_COMMIT) and is installed whole or not at all.
 *
 * The staged selection lives in the arena's channel-statistics region:
 * max_selected floats, exactly max_selected mdy_channel entries, so any legal
 * selection fits without RAM of its own. mdy_set_selection copies it before it
 * resets the statistics; an abandoned or rejected staging only costs the
 * statistics, never the installed selection or its gradients.
 */
#include "mdy_request.h"

static uint8_t *stage_area(mdy_device *d) { return d->ctx.arena + d->model->stats_offset; }

void mdy_selection_abandon(mdy_device *d)
{
    if (d->staging) {
        d->staging = 0;
        mdy_stats_reset(d);
    }
}

uint16_t mdy_req_sel_begin(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t n;
    MDY_NEED_LEN(d, len, SEL_BEGIN);
    n = mdy_rd32(p + MDY_SEL_BEGIN_COUNT);
    if (n > d->model->max_selected)
        return mdy_fail(d, MDY_ERR_BUDGET, "more channels than max_selected");
    mdy_selection_abandon(d);
    d->staging = 1;
    d->stage_n = n;
    d->stage_next = 0;
    return mdy_ok(d);
}

uint16_t mdy_req_sel_chunk(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items, off, k;
    uint8_t *dst;
    MDY_NEED_TAIL(d, len, SEL_CHUNK, items);
    if (!d->staging)
        return mdy_fail(d, MDY_PERR_BAD_STATE, "SEL_CHUNK without SEL_BEGIN");
    off = mdy_rd32(p + MDY_SEL_CHUNK_OFFSET);
    /* in order, or a repeat of an earlier chunk */
    if (off > d->stage_next || !mdy_range_ok(off, items, d->stage_n))
        return mdy_fail(d, MDY_PERR_BAD_FIELD, "SEL_CHUNK: offset/count outside the selection");
    dst = stage_area(d) + off * sizeof(mdy_channel);
    for (k = 0; k < items; k++) {
        mdy_channel c;
        c.layer = mdy_rd16(p + MDY_SEL_CHUNK_SIZE + MDY_SEL_CHUNK_TAIL * k);
        c.channel = mdy_rd16(p + MDY_SEL_CHUNK_SIZE + MDY_SEL_CHUNK_TAIL * k + 2);
        memcpy(dst + k * sizeof(mdy_channel), &c, sizeof(c));
    }
    if (off + items > d->stage_next)
        d->stage_next = off + items;
    return mdy_ok(d);
}

uint16_t mdy_req_sel_commit(mdy_device *d, const uint8_t *p, uint16_t len)
{
    mdy_status st;
    MDY_NEED_LEN(d, len, SEL_COMMIT);
    if (!d->staging)
        return mdy_fail(d, MDY_PERR_BAD_STATE, "SEL_COMMIT without SEL_BEGIN");
    if (mdy_rd32(p + MDY_SEL_COMMIT_COUNT) != d->stage_n || d->stage_next != d->stage_n) {
        mdy_selection_abandon(d);
        return mdy_fail(d, MDY_PERR_BAD_STATE, "SEL_COMMIT: selection incomplete");
    }
    d->staging = 0;
    st = mdy_set_selection(&d->ctx, (const mdy_channel *)(const void *)stage_area(d), d->stage_n);
    if (st != MDY_OK) {
        mdy_stats_reset(d);   /* the stage overwrote them */
        switch (st) {
        case MDY_ERR_RANGE: return mdy_fail(d, st, "layer or channel index out of range");
        case MDY_ERR_ORDER: return mdy_fail(d, st, "selection not strictly increasing");
        case MDY_ERR_BUDGET: return mdy_fail(d, st, "selection does not fit the channel pool");
        default: return mdy_fail(d, st, "selection rejected");
        }
    }
    d->cycles_total = 0;   /* mdy_set_selection reset the rest */
    return mdy_ok(d);
}
