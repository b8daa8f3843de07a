/*
 * The trainable layers' parameters: READ_WEIGHTS and WRITE_WEIGHTS address
 * elements [offset, offset+count) of one layer's weight (which 0) or bias
 * (which 1) array, in place in RAM.
 */
#include "mdy_request.h"

/* The addressed array, or NULL with the error code and text; at most `max`
 * elements (what one answer holds). */
static float *weights_range(const mdy_device *d, uint32_t layer, uint32_t which, uint32_t off,
                            uint32_t count, uint32_t max, int *code, const char **why)
{
    const mdy_model *m = d->model;
    const mdy_layer *l;
    uint32_t n;
    float *w;
    if (layer >= m->n_layers) {
        *code = MDY_ERR_RANGE;
        *why = "layer index out of range";
        return (float *)0;
    }
    if (which > 1) {
        *code = MDY_PERR_BAD_FIELD;
        *why = "which must be 0 (weight) or 1 (bias)";
        return (float *)0;
    }
    l = &m->layers[layer];
    if (which == 0) {
        n = mdy_layer_weight_count(l);
        w = l->weight;
    } else {
        n = mdy_layer_bias_count(m, l);
        w = l->bias;
    }
    if (!mdy_range_ok(off, count, n) || count > max) {
        *code = MDY_PERR_BAD_FIELD;
        *why = "offset/count outside the array";
        return (float *)0;
    }
    return w;
}

uint16_t mdy_req_read_weights(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t off, count, k;
    const float *w;
    int code = 0;
    const char *why = "";
    uint8_t *o = mdy_answer_payload(d);
    MDY_NEED_LEN(d, len, READ_WEIGHTS);
    off = mdy_rd32(p + MDY_READ_WEIGHTS_OFFSET);
    count = mdy_rd32(p + MDY_READ_WEIGHTS_COUNT);
    w = weights_range(d, mdy_rd16(p + MDY_READ_WEIGHTS_LAYER), p[MDY_READ_WEIGHTS_WHICH], off,
                      count, MDY_MAX_ITEMS(WEIGHTS), &code, &why);
    if (!w)
        return mdy_fail(d, code, why);
    mdy_wr32(o + MDY_WEIGHTS_OFFSET, off);
    for (k = 0; k < count; k++)
        mdy_wr_f32(o + MDY_WEIGHTS_SIZE + MDY_WEIGHTS_TAIL * k, w[off + k]);
    return mdy_answer(d, MDY_MSG_WEIGHTS, (uint16_t)(MDY_WEIGHTS_SIZE + MDY_WEIGHTS_TAIL * count));
}

uint16_t mdy_req_write_weights(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items, off, k;
    float *w;
    int code = 0;
    const char *why = "";
    MDY_NEED_TAIL(d, len, WRITE_WEIGHTS, items);
    off = mdy_rd32(p + MDY_WRITE_WEIGHTS_OFFSET);
    w = weights_range(d, mdy_rd16(p + MDY_WRITE_WEIGHTS_LAYER), p[MDY_WRITE_WEIGHTS_WHICH], off,
                      items, MDY_MAX_ITEMS(WRITE_WEIGHTS), &code, &why);
    if (!w)
        return mdy_fail(d, code, why);
    for (k = 0; k < items; k++)
        w[off + k] = mdy_rd_f32(p + MDY_WRITE_WEIGHTS_SIZE + MDY_WRITE_WEIGHTS_TAIL * k);
    return mdy_ok(d);
}
