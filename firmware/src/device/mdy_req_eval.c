/*
 * Inference: EVALUATE (loss and accuracy over samples of the dataset image)
 * and FORWARD / FORWARD_S8 (the logits of one sample from the link). Neither touches the
 * training statistics or gradients.
 */
#include "mdy_request.h"
#include "mdy_board.h"

uint16_t mdy_req_evaluate(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint8_t split;
    uint32_t start, count, i;
    mdy_eval_stats acc;
    const char *why = "";
    int e;
    uint64_t t0;
    uint8_t *o = mdy_answer_payload(d);

    MDY_NEED_LEN(d, len, EVALUATE);
    split = p[MDY_EVALUATE_SPLIT];
    start = mdy_rd32(p + MDY_EVALUATE_START);
    count = mdy_rd32(p + MDY_EVALUATE_COUNT);
    if ((e = mdy_dataset_range(d, split, start, count, &why)) != 0)
        return mdy_fail(d, e, why);
    memset(&acc, 0, sizeof(acc));
    t0 = board_cycles();
    for (i = 0; i < count; i++) {
        int32_t label;
        const void *x = mdy_dataset_sample(d, split, start + i, &label);
        mdy_status st = mdy_eval_sample(&d->ctx, x, label, &acc, NULL);
        if (st != MDY_OK)
            return mdy_fail(d, st, MDY_ENGINE_ERROR " during evaluation");
        if ((i + 1) % MDY_PROTO_PROGRESS_EVERY == 0 && i + 1 < count)
            mdy_send_progress(d, i + 1, count, acc.loss_sum, acc.correct);
    }
    memset(o, 0, MDY_EVAL_R_SIZE);
    mdy_wr_f32(o + MDY_EVAL_R_LOSS_SUM, acc.loss_sum);
    mdy_wr32(o + MDY_EVAL_R_CORRECT, acc.correct);
    mdy_wr32(o + MDY_EVAL_R_COUNT, acc.count);
    mdy_wr32(o + MDY_EVAL_R_NONFINITE, acc.nonfinite);
    mdy_wr64(o + MDY_EVAL_R_CYCLES, board_cycles() - t0);
    return mdy_answer(d, MDY_MSG_EVAL_R, MDY_EVAL_R_SIZE);
}

/* FORWARD (floats) and FORWARD_S8 (int8 codes): the whole payload is the
 * sample's last `items` elements. */
static uint16_t forward(mdy_device *d, const uint8_t *p, uint32_t items, int codes)
{
    const mdy_model *m = d->model;
    uint32_t k;
    float *logits;
    mdy_status st;
    const char *why = "";
    int e;
    uint8_t *o = mdy_answer_payload(d);
    if ((e = mdy_stream_check(d, items, codes, &why)) != 0)
        return mdy_fail(d, e, why);
    if ((uint32_t)m->classes > MDY_MAX_ITEMS(LOGITS))
        return mdy_fail(d, MDY_PERR_TOO_LARGE, "logits do not fit one frame");
    /* The logits go straight into the answer (4-byte aligned), then each is
     * rewritten in place as the protocol's little-endian bytes. */
    logits = (float *)(void *)(o + MDY_LOGITS_SIZE);
    st = mdy_forward(&d->ctx, mdy_stream_sample(d, p, items, codes), logits);
    if (st != MDY_OK)
        return mdy_fail(d, st, MDY_ENGINE_ERROR);
    mdy_wr32(o + MDY_LOGITS_ARGMAX, (uint32_t)mdy_argmax_f32(m->classes, logits));
    for (k = 0; k < (uint32_t)m->classes; k++)
        mdy_wr_f32(o + MDY_LOGITS_SIZE + MDY_LOGITS_TAIL * k, logits[k]);
    return mdy_answer(d, MDY_MSG_LOGITS, (uint16_t)(MDY_LOGITS_SIZE + MDY_LOGITS_TAIL * (uint32_t)m->classes));
}

uint16_t mdy_req_forward(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items;
    MDY_NEED_TAIL(d, len, FORWARD, items);
    return forward(d, p, items, 0);
}

uint16_t mdy_req_forward_s8(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items;
    MDY_NEED_TAIL(d, len, FORWARD_S8, items);
    return forward(d, p, items, 1);
}
