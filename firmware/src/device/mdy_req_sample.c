/*
 * Where a request's samples come from: the dataset image on the device
 * (RUN_EPOCH, EVALUATE), read in place, or the link (TRAIN_STREAM, FORWARD),
 * in place in the receive buffer when the whole sample fits one frame, else
 * assembled in the sample buffer by SAMPLE_CHUNKs. The sample buffer holds
 * exactly one model input: the receive buffer cannot hold it (the next frame
 * overwrites it) and the arena is in use by the pass that reads it.
 */
#include "mdy_request.h"

int mdy_dataset_range(const mdy_device *d, uint8_t split, uint32_t start, uint32_t count,
                      const char **why)
{
    if (d->ds_status != 0) {
        *why = d->ds_status == MDY_PERR_DATASET_SHAPE ? "dataset does not match the model"
                                                       : "no valid dataset image";
        return d->ds_status;
    }
    if (split > MDY_SPLIT_TEST) {
        *why = "split must be 0 (train) or 1 (test)";
        return MDY_PERR_BAD_FIELD;
    }
    if (!mdy_range_ok(start, count, d->ds.n[split])) {
        *why = "start/count outside the split";
        return MDY_PERR_BAD_FIELD;
    }
    return 0;
}

static int input_is_f32(const mdy_device *d)
{
    const mdy_model *m = d->model;
    return m->tensors[m->input].dtype == MDY_F32;
}

/* The image holds floats: read in place by an fp32 model, quantized into the
 * sample buffer for an int8 one. */
const void *mdy_dataset_sample(const mdy_device *d, uint32_t split, uint32_t idx,
                               int32_t *label)
{
    uint32_t n = mdy_input_elems(d);
    const float *x = d->ds.x[split] + (size_t)idx * n;
    *label = d->ds.y[split][idx];
    if (input_is_f32(d))
        return x;
    mdy_input_from_f32(d->model, x, 0, n, d->sample);
    return d->sample;
}

/* A sample that does not fit one frame needs the sample buffer. */
static int need_sample_buffer(const mdy_device *d, const char **why)
{
    if (d->sample_ok)
        return 0;
    *why = "sample buffer differs from the model input";
    return MDY_PERR_BAD_STATE;
}

/* All of it in the payload: 0 (used in place). Fewer: the floats before them
 * must be staged (SAMPLE_CHUNK). Checks only, so a rejected request leaves the
 * staged part as it was. */
int mdy_stream_check(const mdy_device *d, uint32_t items, const char **why)
{
    uint32_t n = mdy_input_elems(d);
    int e;
    if (items > n) {
        *why = "more floats than the model input";
        return MDY_PERR_BAD_LENGTH;
    }
    if (items == n)
        return 0;
    if ((e = need_sample_buffer(d, why)) != 0)
        return e;
    if (d->sample_have != n - items) {
        *why = "incomplete sample: SAMPLE_CHUNK the rest first";
        return MDY_PERR_BAD_STATE;
    }
    return 0;
}

/* In place (an fp32 model's whole sample in one frame), or completed in the
 * sample buffer and consumed: the next one starts again at offset 0. The link
 * carries floats (little-endian, the payload 4-byte aligned, as both targets
 * are); an int8 model's buffer gets their codes. */
const void *mdy_stream_sample(mdy_device *d, const uint8_t *x, uint32_t items)
{
    uint32_t n = mdy_input_elems(d);
    if (items == n && input_is_f32(d))
        return x;
    mdy_input_from_f32(d->model, (const float *)(const void *)x, n - items, items, d->sample);
    d->sample_have = 0;
    return d->sample;
}

uint16_t mdy_req_sample_chunk(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items, off, n = mdy_input_elems(d);
    const char *why = "";
    int e;
    MDY_NEED_TAIL(d, len, SAMPLE_CHUNK, items);
    if ((e = need_sample_buffer(d, &why)) != 0)
        return mdy_fail(d, e, why);
    off = mdy_rd32(p + MDY_SAMPLE_CHUNK_OFFSET);
    if (!mdy_range_ok(off, items, n))
        return mdy_fail(d, MDY_PERR_BAD_FIELD, "SAMPLE_CHUNK: offset/count outside the sample");
    /* 0 starts a sample; else the chunk continues it exactly. (A lost answer
     * is retried with the same seq and answered from the cache, so a chunk
     * never needs to be applied twice.) */
    if (off != 0 && off != d->sample_have)
        return mdy_fail(d, MDY_PERR_BAD_STATE, "SAMPLE_CHUNK out of order");
    mdy_input_from_f32(d->model, (const float *)(const void *)(p + MDY_SAMPLE_CHUNK_SIZE), off,
                       items, d->sample);
    d->sample_have = off + items;
    return mdy_ok(d);
}
