/*
 * What the request handlers share: their signature, the answer helpers
 * (mdy_reply.c), the payload length checks and the handlers of each file.
 * Private to firmware/src/device/.
 *
 * A handler validates every field of its request before it changes any
 * state, writes its answer payload at mdy_answer_payload() and returns the
 * payload length with the answer type set (mdy_answer, mdy_ok), or an ERROR
 * (mdy_fail).
 */
#ifndef MDY_REQUEST_H
#define MDY_REQUEST_H

#include "mdy_device.h"

typedef uint16_t (*mdy_handler)(mdy_device *d, const uint8_t *p, uint16_t len);

/* ------------------------------------------------------------ frames */
static inline uint8_t *mdy_rx_frame(mdy_device *d) { return d->io.b + 2; }
static inline uint8_t *mdy_tx_frame(mdy_device *d) { return d->io.b + MDY_DEVICE_SLOT + 2; }
static inline uint8_t *mdy_answer_payload(mdy_device *d)
{
    return mdy_tx_frame(d) + MDY_PROTO_HEADER_SIZE;
}

/* ------------------------------------------------------------ answers (mdy_reply.c) */
/* An ERROR payload at p: the code, the request type and text cut to
 * MDY_PROTO_ERROR_TEXT_MAX; returns its length. */
uint16_t mdy_error_payload(uint8_t *p, int code, uint8_t request, const char *text);
/* The answer is `type` with `len` payload bytes; returns len. */
uint16_t mdy_answer(mdy_device *d, uint8_t type, uint16_t len);
uint16_t mdy_ok(mdy_device *d);
/* The answer is an ERROR for the current request. */
uint16_t mdy_fail(mdy_device *d, int code, const char *text);
/* An ERROR outside the request/answer pair (bad frame, version), from the
 * small buffer: the answer buffer keeps the cached answer. */
void mdy_send_error(mdy_device *d, uint16_t seq, int code, uint8_t request, const char *text);
/* A PROGRESS frame for the current request. */
void mdy_send_progress(mdy_device *d, uint32_t done, uint32_t total, float loss_sum,
                       uint32_t correct);

/* A request the engine refused or failed (the code is its mdy_status). */
#define MDY_ENGINE_ERROR "engine error"

/* ------------------------------------------------------------ payload length */
#define MDY_LENGTH_ERROR(d, msg) mdy_fail((d), MDY_PERR_BAD_LENGTH, #msg ": wrong payload length")

/* Fixed-size payload. */
#define MDY_NEED_LEN(d, len, msg)                  \
    do {                                           \
        if ((len) != MDY_##msg##_SIZE)             \
            return MDY_LENGTH_ERROR(d, msg);       \
    } while (0)

/* Fixed part + whole number of tail items; sets `items`. */
#define MDY_NEED_TAIL(d, len, msg, items)                                              \
    do {                                                                               \
        if (!mdy_tail_items((len), MDY_##msg##_SIZE, MDY_##msg##_TAIL, &(items)))       \
            return MDY_LENGTH_ERROR(d, msg);                                           \
    } while (0)

/* The most tail items a payload of message `msg` holds. */
#define MDY_MAX_ITEMS(msg) ((MDY_PROTO_MAX_PAYLOAD - MDY_##msg##_SIZE) / MDY_##msg##_TAIL)

/* [off, off+count) is a non-empty part of [0, n), without overflow. */
static inline int mdy_range_ok(uint32_t off, uint32_t count, uint32_t n)
{
    return count != 0 && off <= n && count <= n - off;
}

static inline int mdy_tail_items(uint32_t len, uint32_t size, uint32_t tail, uint32_t *items)
{
    if (len < size || (len - size) % tail)
        return 0;
    *items = (len - size) / tail;
    return 1;
}

/* ------------------------------------------------------------ the model */
static inline const mdy_tensor *mdy_input_tensor(const mdy_device *d)
{
    return &d->model->tensors[d->model->input];
}

static inline uint32_t mdy_input_elems(const mdy_device *d)
{
    const mdy_tensor *t = mdy_input_tensor(d);
    return (uint32_t)t->h * (uint32_t)t->w * (uint32_t)t->c;
}

/* ------------------------------------------------------------ samples (mdy_req_sample.c) */
/* Samples [start, start+count) of a split of the dataset image: 0, or an
 * error code with *why (no usable image, bad split, range outside it). */
int mdy_dataset_range(const mdy_device *d, uint8_t split, uint32_t start, uint32_t count,
                      const char **why);
/* Sample idx of a split (in range) and its label. */
const void *mdy_dataset_sample(const mdy_device *d, uint32_t split, uint32_t idx,
                               int32_t *label);
/* The sample of a TRAIN_STREAM or FORWARD whose payload ends with its last
 * `items` elements, floats or (codes = 1, the _S8 requests) int8 codes: 0 if
 * usable (whole, or completing the staged part; codes only for an int8
 * model), else an error code with *why. Checks only. */
int mdy_stream_check(const mdy_device *d, uint32_t items, int codes, const char **why);
/* After mdy_stream_check and every other check passed: the whole sample. */
const void *mdy_stream_sample(mdy_device *d, const uint8_t *x, uint32_t items, int codes);
uint16_t mdy_req_sample_chunk(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_sample_chunk_s8(mdy_device *d, const uint8_t *p, uint16_t len);

/* ------------------------------------------------------------ handlers */
/* mdy_req_info.c: the link, the device and its model */
uint16_t mdy_req_ping(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_info(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_layers(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_shutdown(mdy_device *d, const uint8_t *p, uint16_t len);

/* mdy_req_selection.c: the trained channels */
uint16_t mdy_req_sel_begin(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_sel_chunk(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_sel_commit(mdy_device *d, const uint8_t *p, uint16_t len);
/* Drops a selection being staged (any request but SEL_*). */
void mdy_selection_abandon(mdy_device *d);

/* mdy_req_train.c: training and its statistics */
uint16_t mdy_req_run_epoch(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_train_stream(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_train_stream_s8(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_get_stats(mdy_device *d, const uint8_t *p, uint16_t len);
/* Training statistics and cycle counts start again. */
void mdy_stats_reset(mdy_device *d);

/* mdy_req_eval.c: inference */
uint16_t mdy_req_evaluate(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_forward(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_forward_s8(mdy_device *d, const uint8_t *p, uint16_t len);

/* mdy_req_weights.c: the trainable layers' parameters */
uint16_t mdy_req_read_weights(mdy_device *d, const uint8_t *p, uint16_t len);
uint16_t mdy_req_write_weights(mdy_device *d, const uint8_t *p, uint16_t len);

#endif /* MDY_REQUEST_H */
