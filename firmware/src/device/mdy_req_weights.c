/*
 * The trainable layers' parameters: READ_WEIGHTS and WRITE_WEIGHTS address
 * elements [offset, offset+count) of one layer's weight (which 0) or bias
 * (which 1) array, in place in RAM, as real-unit floats (an int8 layer's
 * codes are converted by the runtime's mdy_layer_param_get/set).
 */
#include "mdy_request.h"

/* The addressed layer, or NULL with the error code and text; at most `max`
 * elements (what one answer holds). */
static const mdy_layer *weights_range(const mdy_device *d, uint32_t layer, uint32_t which,
                                      uint32_t off, uint32_t count, uint32_t max, int *code,
                                      const char **why)
{
    const mdy_model *m = d->model;
    const mdy_layer *l;
    if (layer >= m->n_layers) {
        *code = MDY_ERR_RANGE;
        *why = "layer index out of range";
        return (const mdy_layer *)0;
    }
    if (which > 1) {
        *code = MDY_PERR_BAD_FIELD;
        *why = "which must be 0 (weight) or 1 (bias)";
        return (const mdy_layer *)0;
    }
    l = &m->layers[layer];
    if (!mdy_range_ok(off, count, mdy_layer_param_count(m, l, (int)which)) || count > max) {
        *code = MDY_PERR_BAD_FIELD;
        *why = "offset/count outside the array";
        return (const mdy_layer *)0;
    }
    return l;
}

uint16_t mdy_req_read_weights(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t off, count, k;
    const mdy_layer *l;
    int code = 0, which = p[MDY_READ_WEIGHTS_WHICH];
    const char *why = "";
    uint8_t *o = mdy_answer_payload(d);
    MDY_NEED_LEN(d, len, READ_WEIGHTS);
    off = mdy_rd32(p + MDY_READ_WEIGHTS_OFFSET);
    count = mdy_rd32(p + MDY_READ_WEIGHTS_COUNT);
    l = weights_range(d, mdy_rd16(p + MDY_READ_WEIGHTS_LAYER), (uint32_t)which, off, count,
                      MDY_MAX_ITEMS(WEIGHTS), &code, &why);
    if (!l)
        return mdy_fail(d, code, why);
    mdy_wr32(o + MDY_WEIGHTS_OFFSET, off);
    for (k = 0; k < count; k++)
        mdy_wr_f32(o + MDY_WEIGHTS_SIZE + MDY_WEIGHTS_TAIL * k,
                   mdy_layer_param_get(d->model, l, which, off + k));
    return mdy_answer(d, MDY_MSG_WEIGHTS, (uint16_t)(MDY_WEIGHTS_SIZE + MDY_WEIGHTS_TAIL * count));
}

uint16_t mdy_req_write_weights(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items, off, k;
    const mdy_layer *l;
    int code = 0, which;
    const char *why = "";
    MDY_NEED_TAIL(d, len, WRITE_WEIGHTS, items);
    which = p[MDY_WRITE_WEIGHTS_WHICH];
    off = mdy_rd32(p + MDY_WRITE_WEIGHTS_OFFSET);
    l = weights_range(d, mdy_rd16(p + MDY_WRITE_WEIGHTS_LAYER), (uint32_t)which, off, items,
                      MDY_MAX_ITEMS(WRITE_WEIGHTS), &code, &why);
    if (!l)
        return mdy_fail(d, code, why);
    for (k = 0; k < items; k++)
        mdy_layer_param_set(d->model, l, which, off + k,
                            mdy_rd_f32(p + MDY_WRITE_WEIGHTS_SIZE + MDY_WRITE_WEIGHTS_TAIL * k));
    return mdy_ok(d);
}
