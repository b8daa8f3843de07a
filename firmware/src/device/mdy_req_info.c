/*
 * Requests about the link, the device and its model: PING, INFO, LAYERS and
 * SHUTDOWN.
 */
#include "mdy_request.h"
#include "mdy_board.h"

/* A LAYERS_R entry is one LAYER_ENTRY record (both from spec.py). */
typedef char layer_entry_is_the_tail_[(MDY_LAYERS_R_TAIL == MDY_LAYER_ENTRY_SIZE) ? 1 : -1];

static void wr_name(uint8_t *p, const char *s)
{
    uint32_t i = 0;
    memset(p, 0, MDY_PROTO_NAME_LEN);
    while (s && s[i] && i < MDY_PROTO_NAME_LEN - 1) {
        p[i] = (uint8_t)s[i];
        i++;
    }
}

uint16_t mdy_req_ping(mdy_device *d, const uint8_t *p, uint16_t len)
{
    memmove(mdy_answer_payload(d), p, len);
    return mdy_answer(d, MDY_MSG_PONG, len);
}

uint16_t mdy_req_info(mdy_device *d, const uint8_t *p, uint16_t len)
{
    const mdy_model *m = d->model;
    const mdy_tensor *t = mdy_input_tensor(d);
    uint8_t *o = mdy_answer_payload(d);
    (void)p;
    MDY_NEED_LEN(d, len, INFO);
    memset(o, 0, MDY_INFO_R_SIZE);
    mdy_wr16(o + MDY_INFO_R_ENGINE_VERSION, MDY_ENGINE_VERSION);
    o[MDY_INFO_R_PROTOCOL_VERSION] = MDY_PROTO_VERSION;
    o[MDY_INFO_R_FLAGS] = (uint8_t)((d->ds_status == 0 ? MDY_INFO_DATASET : 0) |
                                    (t->dtype == MDY_S8 ? MDY_INFO_INPUT_S8 : 0));
    mdy_wr32(o + MDY_INFO_R_MODEL_HASH, m->hash);
    mdy_wr32(o + MDY_INFO_R_ARENA_SIZE, m->arena_size);
    mdy_wr32(o + MDY_INFO_R_POOL_SIZE, m->pool_size);
    mdy_wr32(o + MDY_INFO_R_MAX_SELECTED, m->max_selected);
    mdy_wr32(o + MDY_INFO_R_CLASSES, (uint32_t)m->classes);
    mdy_wr32(o + MDY_INFO_R_IN_H, (uint32_t)t->h);
    mdy_wr32(o + MDY_INFO_R_IN_W, (uint32_t)t->w);
    mdy_wr32(o + MDY_INFO_R_IN_C, (uint32_t)t->c);
    mdy_wr16(o + MDY_INFO_R_N_LAYERS, m->n_layers);
    mdy_wr16(o + MDY_INFO_R_N_OPS, m->n_ops);
    mdy_wr16(o + MDY_INFO_R_MAX_PAYLOAD, MDY_PROTO_MAX_PAYLOAD);
    mdy_wr16(o + MDY_INFO_R_MAX_EPOCH, MDY_PROTO_MAX_EPOCH_SAMPLES);
    mdy_wr32(o + MDY_INFO_R_STACK_SIZE, board_stack_size());
    mdy_wr32(o + MDY_INFO_R_CYCLES_HZ, board_cycles_hz());
    mdy_wr32(o + MDY_INFO_R_N_TRAIN, d->ds_status == 0 ? d->ds.n[MDY_SPLIT_TRAIN] : 0);
    mdy_wr32(o + MDY_INFO_R_N_TEST, d->ds_status == 0 ? d->ds.n[MDY_SPLIT_TEST] : 0);
    mdy_wr32(o + MDY_INFO_R_N_SELECTED, d->ctx.n_selected);
    wr_name(o + MDY_INFO_R_BOARD, board_name);
    wr_name(o + MDY_INFO_R_MODEL, d->model_name);
    return mdy_answer(d, MDY_MSG_INFO_R, MDY_INFO_R_SIZE);
}

uint16_t mdy_req_layers(mdy_device *d, const uint8_t *p, uint16_t len)
{
    const mdy_model *m = d->model;
    uint32_t off, count, k;
    uint8_t *o = mdy_answer_payload(d);
    MDY_NEED_LEN(d, len, LAYERS);
    off = mdy_rd16(p + MDY_LAYERS_OFFSET);
    count = mdy_rd16(p + MDY_LAYERS_COUNT);
    if (count > MDY_MAX_ITEMS(LAYERS_R) || !mdy_range_ok(off, count, m->n_layers))
        return mdy_fail(d, MDY_PERR_BAD_FIELD, "LAYERS: offset/count outside the layer table");
    mdy_wr16(o + MDY_LAYERS_R_OFFSET, (uint16_t)off);
    mdy_wr16(o + MDY_LAYERS_R_COUNT, (uint16_t)count);
    for (k = 0; k < count; k++) {
        const mdy_layer *l = &m->layers[off + k];
        const mdy_op *op = &m->ops[l->op];
        uint8_t *e = o + MDY_LAYERS_R_SIZE + MDY_LAYERS_R_TAIL * k;
        mdy_wr16(e + MDY_LAYER_ENTRY_OP, l->op);
        e[MDY_LAYER_ENTRY_KIND] = (uint8_t)op->kind;
        e[MDY_LAYER_ENTRY_TRAIN_BIAS] = (uint8_t)(l->train_bias != 0);
        mdy_wr32(e + MDY_LAYER_ENTRY_CHANNELS, (uint32_t)l->channels);
        mdy_wr32(e + MDY_LAYER_ENTRY_SLICE_SIZE, (uint32_t)l->slice_size);
        mdy_wr32(e + MDY_LAYER_ENTRY_MAP_SIZE, (uint32_t)l->map_size);
        mdy_wr32(e + MDY_LAYER_ENTRY_WEIGHT_COUNT, mdy_layer_param_count(m, l, 0));
        mdy_wr32(e + MDY_LAYER_ENTRY_BIAS_COUNT, mdy_layer_param_count(m, l, 1));
    }
    return mdy_answer(d, MDY_MSG_LAYERS_R, (uint16_t)(MDY_LAYERS_R_SIZE + MDY_LAYERS_R_TAIL * count));
}

/* The answer goes out first; the dispatcher then leaves through board_exit. */
uint16_t mdy_req_shutdown(mdy_device *d, const uint8_t *p, uint16_t len)
{
    MDY_NEED_LEN(d, len, SHUTDOWN);
    d->exit_code = (int)mdy_rd32(p + MDY_SHUTDOWN_CODE);
    d->exit_due = 1;
    return mdy_ok(d);
}
