/*
 * Device side of the serial protocol (docs/PROTOCOL.md): framing, dataset
 * image reader, epoch order and the request dispatcher. Written against
 * medyate.h (the engine) and mdy_board.h (the board) only.
 */
#ifndef MDY_DEVICE_H
#define MDY_DEVICE_H

#include <stdint.h>
#include <stddef.h>

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
    const float *x[2];       /* NHWC float32 */
    const uint8_t *y[2];
} mdy_dataset;

/* Validates an image in memory of which `avail` bytes are readable (its
 * total_size must fit them, and the data CRC over them must match: an image
 * cut short is refused, not read past its end); 0 or an MDY_PERR_* code. */
int mdy_dataset_open(mdy_dataset *ds, const uint8_t *image, uint32_t avail);

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

#endif /* MDY_DEVICE_H */
