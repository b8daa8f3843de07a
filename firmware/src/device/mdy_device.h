/*
 * Device side of the serial protocol (docs/PROTOCOL.md): framing, dataset
 * image reader, epoch order, the retry cache, the device state and the
 * request dispatcher. Written against medyate.h (the engine) and mdy_board.h
 * (the board) only; what the request handlers share is in mdy_request.h.
 */
#ifndef MDY_DEVICE_H
#define MDY_DEVICE_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "medyate.h"
#include "mdy_protocol.h"

/* ------------------------------------------------------------ framing */
uint32_t mdy_crc32(uint32_t crc, const uint8_t *p, size_t n);  /* crc = 0 to start */

/* Streaming COBS decoder: bytes in, a decoded frame in `buf` out. */
typedef struct {
    uint8_t *buf;
    uint32_t cap;
    uint32_t len;
    uint8_t left;       /* bytes left in the current COBS block; 0: a code byte is next */
    uint8_t zero_due;   /* the previous block (code < 255) ends with a 0x00 */
    uint8_t overflow;
    uint8_t started;
} mdy_rx;

enum { MDY_RX_MORE = 0, MDY_RX_FRAME = 1, MDY_RX_BAD = -1, MDY_RX_EMPTY = 2 };

void mdy_rx_init(mdy_rx *rx, uint8_t *buf, uint32_t cap);
/* MDY_RX_FRAME: buf[0..len) holds a decoded frame (CRC not yet checked). */
int mdy_rx_byte(mdy_rx *rx, uint8_t b);

/* Checks length, length field and CRC of a decoded frame: 0 if good. */
int mdy_frame_check(const uint8_t *frame, uint32_t len);
/* Fills header and CRC around frame[6 .. 6+payload_len) and writes it,
 * COBS-encoded between 0x00 delimiters, to the UART. */
void mdy_frame_send(uint8_t *frame, uint8_t type, uint16_t seq, uint16_t payload_len);

/* ------------------------------------------------------------ order */
uint32_t mdy_xorshift32(uint32_t x);
/* perm[0..n) = the epoch's sample order (host: medyate.protocol.order). */
void mdy_epoch_order(uint16_t *perm, uint32_t n, uint32_t seed);

/* ------------------------------------------------------------ dataset image */
typedef struct {
    uint32_t n[2];           /* samples of split 0 (train) and 1 (test) */
    uint32_t h, w, c, classes;
    uint32_t dtype;          /* MDY_DATASET_F32 or MDY_DATASET_S8 */
    float scale;             /* int8 codes: the quantization they were made with */
    int32_t zero;
    const uint8_t *x[2];     /* NHWC samples: float32, or int8 codes */
    const uint8_t *y[2];
} mdy_dataset;

/* Validates an image in memory of which `avail` bytes are readable (its
 * total_size must fit them, and the data CRC over them must match: an image
 * cut short is refused, not read past its end); 0 or an MDY_PERR_* code. */
int mdy_dataset_open(mdy_dataset *ds, const uint8_t *image, uint32_t avail);

/* ------------------------------------------------------------ retry cache */
/* The last executed request (seq + CRC) and its answer's type and length; the
 * answer itself stays in the device's answer buffer. A repeat of that request
 * (its answer was lost) is answered again without running again. */
typedef struct {
    uint8_t valid;
    uint8_t type;
    uint16_t seq;
    uint16_t len;
    uint32_t crc;
} mdy_retry;

/* 1 if (seq, crc) is the cached request. */
int mdy_retry_hit(const mdy_retry *r, uint16_t seq, uint32_t crc);
/* Before the answer buffer changes. */
void mdy_retry_forget(mdy_retry *r);
/* After a request ran and its answer (type, len) is in the answer buffer. */
void mdy_retry_keep(mdy_retry *r, uint16_t seq, uint32_t crc, uint8_t type, uint16_t len);

/* ------------------------------------------------------------ device state */
/* A frame at +2 in its slot: its payload (after the 6-byte header) is then
 * 4-byte aligned, so floats are read and written in place. */
#define MDY_DEVICE_SLOT (2u + MDY_PROTO_FRAME_MAX)
#define MDY_DEVICE_AUX_SIZE 64u

/*
 * Everything the device keeps between frames, in one place; one instance
 * (mdy_dispatch.c), passed to every request handler.
 *
 * RAM (static): the receive and answer frame buffers (2 x 2060 bytes, shared
 * with the epoch permutation, see `io`), a 64-byte buffer for PROGRESS and NAK
 * frames, the engine context and a few words of state; beside it one streamed
 * sample (the model's input, see `sample`). Nothing else: a selection is
 * staged in the arena (mdy_req_selection.c), samples are read in place from
 * the dataset image or, when a whole one fits, from the receive buffer.
 */
typedef struct {
    /* The receive and answer buffers are idle while an epoch runs (the
     * request is parsed, the answer not yet written), so the epoch's sample
     * permutation lives in them instead of in RAM of its own. */
    union {
        uint32_t align_;
        uint8_t b[2u * MDY_DEVICE_SLOT];
        uint16_t perm[MDY_DEVICE_SLOT];
    } io;
    union {
        uint32_t align_;
        uint8_t b[MDY_DEVICE_AUX_SIZE];
    } aux;
    mdy_rx rx;
    mdy_retry retry;

    /* The request being executed, and the answer its handler writes. */
    uint8_t req_type;
    uint16_t req_seq;
    uint8_t answer_type;
    uint8_t exit_due;                /* SHUTDOWN accepted: exit once answered */
    int exit_code;

    /* The engine on the generated model. */
    const mdy_model *model;
    const char *model_name;
    mdy_ctx ctx;
    mdy_status init_status;
    uint64_t cycles_total;           /* of whole epoch requests; the runtime counts the phases */

    mdy_dataset ds;
    int ds_status;                   /* 0 or MDY_PERR_* */

    /* A selection arriving in chunks (SEL_BEGIN/SEL_CHUNK/SEL_COMMIT). */
    int staging;
    uint32_t stage_n, stage_next;

    /* A streamed sample larger than one frame: SAMPLE_CHUNKs fill it from the
     * start, the TRAIN_STREAM or FORWARD carrying its last floats completes
     * and consumes it. Exactly one model input, sized at compile time from the
     * generated model_config.h (mdy_dispatch.c). */
    uint8_t *sample;                 /* in the model input's element type */
    uint32_t sample_have;            /* elements staged so far of the current sample */
    int sample_ok;                   /* the buffer's size equals the model's input */
} mdy_device;

/* ------------------------------------------------------------ dispatcher */
/* mdy_init on the generated model, dataset from the board. */
void mdy_device_init(void);
/* Feed one received byte; answers complete frames. */
void mdy_device_rx_byte(uint8_t b);

/* little-endian field access (payloads are unaligned) */
static inline uint16_t mdy_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t mdy_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void mdy_wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void mdy_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void mdy_wr64(uint8_t *p, uint64_t v)
{
    mdy_wr32(p, (uint32_t)v);
    mdy_wr32(p + 4, (uint32_t)(v >> 32));
}
static inline float mdy_rd_f32(const uint8_t *p)
{
    float f;
    uint32_t u = mdy_rd32(p);
    memcpy(&f, &u, 4);
    return f;
}
static inline void mdy_wr_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    mdy_wr32(p, u);
}

#endif /* MDY_DEVICE_H */
