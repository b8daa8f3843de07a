/*
 * Where a request's samples come from: the dataset image on the device
 * (RUN_EPOCH, EVALUATE), read in place, or the link (TRAIN_STREAM, FORWARD and
 * their _S8 forms), in place in the receive buffer when the whole sample fits
 * one frame, else assembled in the sample buffer by SAMPLE_CHUNKs. The sample
 * buffer holds exactly one model input: the receive buffer cannot hold it (the
 * next frame overwrites it) and the arena is in use by the pass that reads it.
 *
 * Samples arrive as floats or, for an int8 model, as its input codes (an int8
 * dataset image, the _S8 requests). Codes are used as they are; floats are
 * quantized with mdy_input_from_f32, the function the host made the codes
 * with, so both ways give an int8 model the same input.
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
    return mdy_input_tensor(d)->dtype == MDY_F32;
}

/* The image's samples in the model's own element type (fp32, or int8 codes
 * checked against the input's quantization when the image was opened) are
 * read in place; a float image for an int8 model is quantized into the sample
 * buffer. */
const void *mdy_dataset_sample(const mdy_device *d, uint32_t split, uint32_t idx,
                               int32_t *label)
{
    uint32_t n = mdy_input_elems(d);
    *label = d->ds.y[split][idx];
    if (d->ds.dtype == MDY_DATASET_S8)
        return d->ds.x[split] + (size_t)idx * n;
    if (input_is_f32(d))
        return d->ds.x[split] + (size_t)idx * n * sizeof(float);
    mdy_input_from_f32(d->model, (const float *)(const void *)d->ds.x[split] + (size_t)idx * n,
                       0, n, d->sample);
    return d->sample;
}

/* Elements [first, first + n) of a streamed sample into the sample buffer:
 * int8 codes copied, floats as mdy_input_from_f32 takes them. */
static void stage(mdy_device *d, const uint8_t *x, uint32_t first, uint32_t n, int codes)
{
    if (codes)
        memcpy(d->sample + first, x, n);
    else
        mdy_input_from_f32(d->model, (const float *)(const void *)x, first, n, d->sample);
}

/* Codes only for an int8 input. */
static int codes_ok(const mdy_device *d, int codes, const char **why)
{
    if (codes && input_is_f32(d)) {
        *why = "int8 codes sent to an fp32 model: send floats";
        return MDY_PERR_BAD_STATE;
    }
    return 0;
}

/* A sample that does not fit one frame needs the sample buffer. */
static int need_sample_buffer(const mdy_device *d, const char **why)
{
    if (d->sample_ok)
        return 0;
    *why = "sample buffer differs from the model input";
    return MDY_PERR_BAD_STATE;
}

/* All of it in the payload: 0 (used in place). Fewer: the elements before
 * them must be staged (SAMPLE_CHUNK). Checks only, so a rejected request
 * leaves the staged part as it was. */
int mdy_stream_check(const mdy_device *d, uint32_t items, int codes, const char **why)
{
    uint32_t n = mdy_input_elems(d);
    int e;
    if ((e = codes_ok(d, codes, why)) != 0)
        return e;
    if (items > n) {
        *why = "more elements than the model input";
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

/* In place (a whole sample of the model's own element type in one frame), or
 * completed in the sample buffer and consumed: the next one starts again at
 * offset 0. Floats on the link are little-endian, the payload 4-byte aligned,
 * as both targets are. */
const void *mdy_stream_sample(mdy_device *d, const uint8_t *x, uint32_t items, int codes)
{
    uint32_t n = mdy_input_elems(d);
    if (items == n && codes == !input_is_f32(d))
        return x;
    stage(d, x, n - items, items, codes);
    d->sample_have = 0;
    return d->sample;
}

/* SAMPLE_CHUNK (floats) and SAMPLE_CHUNK_S8 (codes, int8 models only). */
static uint16_t sample_chunk(mdy_device *d, const uint8_t *p, uint32_t items, int codes)
{
    uint32_t off, n = mdy_input_elems(d);
    const char *why = "";
    int e;
    if ((e = codes_ok(d, codes, &why)) != 0 || (e = need_sample_buffer(d, &why)) != 0)
        return mdy_fail(d, e, why);
    off = mdy_rd32(p + MDY_SAMPLE_CHUNK_OFFSET);
    if (!mdy_range_ok(off, items, n))
        return mdy_fail(d, MDY_PERR_BAD_FIELD, "SAMPLE_CHUNK: offset/count outside the sample");
    /* 0 starts a sample; else the chunk continues it exactly. (A lost answer
     * is retried with the same seq and answered from the cache, so a chunk
     * never needs to be applied twice.) */
    if (off != 0 && off != d->sample_have)
        return mdy_fail(d, MDY_PERR_BAD_STATE, "SAMPLE_CHUNK out of order");
    stage(d, p + MDY_SAMPLE_CHUNK_SIZE, off, items, codes);
    d->sample_have = off + items;
    return mdy_ok(d);
}

uint16_t mdy_req_sample_chunk(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items;
    MDY_NEED_TAIL(d, len, SAMPLE_CHUNK, items);
    return sample_chunk(d, p, items, 0);
}

uint16_t mdy_req_sample_chunk_s8(mdy_device *d, const uint8_t *p, uint16_t len)
{
    uint32_t items;
    MDY_NEED_TAIL(d, len, SAMPLE_CHUNK_S8, items);
    return sample_chunk(d, p, items, 1);
}

/* The two chunk layouts agree but for the element size. */
typedef char chunk_layouts_agree_[(MDY_SAMPLE_CHUNK_SIZE == MDY_SAMPLE_CHUNK_S8_SIZE &&
                                   MDY_SAMPLE_CHUNK_OFFSET == MDY_SAMPLE_CHUNK_S8_OFFSET &&
                                   MDY_SAMPLE_CHUNK_S8_TAIL == 1) ? 1 : -1];
