/*
 * Request dispatcher (docs/PROTOCOL.md): checks each frame, answers a retry
 * from the cache (mdy_retry.c), else runs the request's handler on the one
 * device state and sends its answer. The handlers, grouped by topic, are in
 * mdy_req_*.c; what they share is in mdy_request.h.
 */
#include "mdy_request.h"
#include "mdy_board.h"
#include "mdy_generated.h"
#include "model_config.h"

/* Exactly one model input as the engine takes it, to assemble a streamed
 * sample or convert one (mdy_req_sample.c): this buffer for an fp32 model
 * (sized at compile time from the generated model_config.h; mdy_device_init
 * checks it against the model), the input's own arena region for an int8
 * model (mdy_input_buffer; no buffer here). */
#if MDY_MODEL_SAMPLE_BUFFER_BYTES > 0
static uint8_t sample[MDY_MODEL_SAMPLE_BUFFER_BYTES] __attribute__((aligned(4)));
#endif

static mdy_device device;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* What a request may do besides its handler. */
enum {
    REQ_STAGING = 1,        /* part of a selection being staged: does not abandon it */
    REQ_NO_ENGINE = 2       /* answered even when the engine failed to initialise */
};

typedef struct {
    mdy_handler run;
    uint8_t flags;
} request;

/* Request type -> handler; a type without one is unknown. */
static const request requests[] = {
    [MDY_MSG_PING] = {mdy_req_ping, REQ_NO_ENGINE},
    [MDY_MSG_INFO] = {mdy_req_info, 0},
    [MDY_MSG_LAYERS] = {mdy_req_layers, 0},
    [MDY_MSG_SEL_BEGIN] = {mdy_req_sel_begin, REQ_STAGING},
    [MDY_MSG_SEL_CHUNK] = {mdy_req_sel_chunk, REQ_STAGING},
    [MDY_MSG_SEL_COMMIT] = {mdy_req_sel_commit, REQ_STAGING},
    [MDY_MSG_RUN_EPOCH] = {mdy_req_run_epoch, 0},
    [MDY_MSG_GET_STATS] = {mdy_req_get_stats, 0},
    [MDY_MSG_TRAIN_STREAM] = {mdy_req_train_stream, 0},
    [MDY_MSG_EVALUATE] = {mdy_req_evaluate, 0},
    [MDY_MSG_READ_WEIGHTS] = {mdy_req_read_weights, 0},
    [MDY_MSG_WRITE_WEIGHTS] = {mdy_req_write_weights, 0},
    [MDY_MSG_FORWARD] = {mdy_req_forward, 0},
    [MDY_MSG_SHUTDOWN] = {mdy_req_shutdown, REQ_NO_ENGINE},
    [MDY_MSG_SAMPLE_CHUNK] = {mdy_req_sample_chunk, 0},
    [MDY_MSG_TRAIN_STREAM_S8] = {mdy_req_train_stream_s8, 0},
    [MDY_MSG_SAMPLE_CHUNK_S8] = {mdy_req_sample_chunk_s8, 0},
    [MDY_MSG_FORWARD_S8] = {mdy_req_forward_s8, 0},
};

static uint16_t execute(mdy_device *d, uint8_t type, const uint8_t *p, uint16_t len)
{
    const request *r = type < ARRAY_SIZE(requests) && requests[type].run ? &requests[type] : 0;
    uint8_t flags = r ? r->flags : 0;
    if (!(flags & REQ_STAGING))
        mdy_selection_abandon(d);
    if (d->init_status != MDY_OK && !(flags & REQ_NO_ENGINE))
        return mdy_fail(d, d->init_status, "engine init failed");
    if (!r)
        return mdy_fail(d, MDY_PERR_UNKNOWN_TYPE, "unknown request type");
    return r->run(d, p, len);
}

/* A frame that cannot be trusted, not even its seq. */
static void send_nak(mdy_device *d)
{
    mdy_send_error(d, MDY_PROTO_NAK_SEQ, MDY_PERR_BAD_FRAME, 0, "bad frame");
}

static void on_frame(mdy_device *d, uint32_t flen)
{
    uint8_t *f = mdy_rx_frame(d);
    uint16_t seq, plen, alen;
    uint32_t crc;

    if (mdy_frame_check(f, flen) != 0) {
        send_nak(d);
        return;
    }
    seq = mdy_rd16(f + MDY_HDR_SEQ_OFF);
    plen = mdy_rd16(f + MDY_HDR_LEN_OFF);
    crc = mdy_rd32(f + flen - MDY_PROTO_CRC_SIZE);
    d->req_type = f[MDY_HDR_TYPE_OFF];
    d->req_seq = seq;
    if (f[MDY_HDR_VERSION_OFF] != MDY_PROTO_VERSION) {
        mdy_send_error(d, seq, MDY_PERR_BAD_VERSION, d->req_type, "protocol version mismatch");
        return;
    }
    if (mdy_retry_hit(&d->retry, seq, crc)) {
        /* a retry: the answer was lost, the request already ran */
        mdy_frame_send(mdy_tx_frame(d), d->retry.type, seq, d->retry.len);
        return;
    }
    mdy_retry_forget(&d->retry);   /* the answer buffer is about to change */
    alen = execute(d, d->req_type, f + MDY_PROTO_HEADER_SIZE, plen);
    mdy_retry_keep(&d->retry, seq, crc, d->answer_type, alen);
    mdy_frame_send(mdy_tx_frame(d), d->answer_type, seq, alen);
    if (d->exit_due) {
        d->exit_due = 0;
        board_exit(d->exit_code);
    }
}

void mdy_device_rx_byte(uint8_t b)
{
    mdy_device *d = &device;
    int r = mdy_rx_byte(&d->rx, b);
    if (r == MDY_RX_FRAME)
        on_frame(d, d->rx.len);
    else if (r == MDY_RX_BAD)
        send_nak(d);
}

void mdy_device_init(void)
{
    mdy_device *d = &device;
    const mdy_model *m = &mdy_generated_model;
    const mdy_tensor *t;
    memset(d, 0, sizeof(*d));   /* a restart starts afresh, as from a zeroed .bss */
    d->model = m;
    d->model_name = mdy_generated_name;
    mdy_rx_init(&d->rx, mdy_rx_frame(d), MDY_PROTO_FRAME_MAX);
    d->init_status = mdy_init(&d->ctx, m, mdy_generated_arena);
    d->sample = (uint8_t *)mdy_input_buffer(&d->ctx);
    d->sample_ok = d->sample != (uint8_t *)0;
#if MDY_MODEL_SAMPLE_BUFFER_BYTES > 0
    if (!d->sample) {
        d->sample = sample;
        d->sample_ok = mdy_input_bytes(m) == (uint32_t)sizeof(sample);
    }
#endif
    d->ctx.clock = board_cycles;
    d->ds_status = mdy_dataset_open(&d->ds, board_dataset(), board_dataset_size());
    if (d->ds_status == 0) {
        t = mdy_input_tensor(d);
        if (d->ds.h != (uint32_t)t->h || d->ds.w != (uint32_t)t->w || d->ds.c != (uint32_t)t->c ||
            d->ds.classes > (uint32_t)m->classes)
            d->ds_status = MDY_PERR_DATASET_SHAPE;
        /* int8 codes are used as they are: only by an int8 input of exactly
         * the quantization they were made with (the same bits of the scale) */
        if (d->ds.dtype == MDY_DATASET_S8 &&
            (t->dtype != MDY_S8 || memcmp(&d->ds.scale, &t->scale, sizeof(float)) != 0 ||
             d->ds.zero != t->zero))
            d->ds_status = MDY_PERR_DATASET_SHAPE;
    }
}
