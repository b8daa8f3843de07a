/*
 * Frames: COBS between 0x00 delimiters, CRC-32 (IEEE, as zlib.crc32).
 * Decoding is streaming (one byte at a time straight into the frame buffer)
 * and encoding writes COBS blocks straight from the frame buffer, so the
 * receive and answer buffers are the only protocol buffers.
 */
#include "mdy_device.h"
#include "mdy_board.h"

/* Nibble table: 64 bytes of flash instead of 1 KiB, fast enough for frames of
 * at most 2 KiB. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t mdy_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
    }
    return ~crc;
}

void mdy_rx_init(mdy_rx *rx, uint8_t *buf, uint32_t cap)
{
    rx->buf = buf;
    rx->cap = cap;
    rx->len = 0;
    rx->left = 0;
    rx->zero_due = 0;
    rx->overflow = 0;
    rx->started = 0;
}

static void rx_put(mdy_rx *rx, uint8_t b)
{
    if (rx->len < rx->cap)
        rx->buf[rx->len++] = b;
    else
        rx->overflow = 1;
}

int mdy_rx_byte(mdy_rx *rx, uint8_t b)
{
    if (b == 0) {
        int r;
        if (!rx->started)
            r = MDY_RX_EMPTY;
        else if (rx->overflow || rx->left != 0)
            r = MDY_RX_BAD;   /* too long, or a block cut short */
        else
            r = MDY_RX_FRAME;
        rx->left = 0;
        rx->zero_due = 0;
        rx->overflow = 0;
        rx->started = 0;
        if (r != MDY_RX_FRAME)
            rx->len = 0;
        return r;
    }
    if (!rx->started) {
        rx->started = 1;
        rx->len = 0;
    }
    if (rx->left == 0) {          /* a code byte */
        if (rx->zero_due)
            rx_put(rx, 0);
        rx->left = (uint8_t)(b - 1);
        rx->zero_due = b < 255;
    } else {
        rx_put(rx, b);
        rx->left--;
    }
    return MDY_RX_MORE;
}

int mdy_frame_check(const uint8_t *frame, uint32_t len)
{
    uint32_t body;
    if (len < MDY_PROTO_HEADER_SIZE + MDY_PROTO_CRC_SIZE || len > MDY_PROTO_FRAME_MAX)
        return -1;
    body = len - MDY_PROTO_CRC_SIZE;
    if (mdy_crc32(0, frame, body) != mdy_rd32(frame + body))
        return -1;
    if (mdy_rd16(frame + MDY_HDR_LEN_OFF) != body - MDY_PROTO_HEADER_SIZE)
        return -1;
    return 0;
}

void mdy_frame_send(uint8_t *frame, uint8_t type, uint16_t seq, uint16_t payload_len)
{
    static const uint8_t zero = 0;
    uint32_t n = MDY_PROTO_HEADER_SIZE + (uint32_t)payload_len;
    uint32_t i = 0;

    frame[MDY_HDR_VERSION_OFF] = MDY_PROTO_VERSION;
    frame[MDY_HDR_TYPE_OFF] = type;
    mdy_wr16(frame + MDY_HDR_SEQ_OFF, seq);
    mdy_wr16(frame + MDY_HDR_LEN_OFF, payload_len);
    mdy_wr32(frame + n, mdy_crc32(0, frame, n));
    n += MDY_PROTO_CRC_SIZE;

    board_uart_write(&zero, 1);
    /* COBS: each block is a code byte (1 + run length) and a run of non-zero
     * bytes; a run ends at a 0x00 (dropped, implied by the code) or at 254
     * bytes (code 255, nothing implied). */
    for (;;) {
        uint32_t run = 0;
        uint8_t code;
        while (i + run < n && run < 254 && frame[i + run] != 0)
            run++;
        code = (uint8_t)(run + 1);
        board_uart_write(&code, 1);
        if (run)
            board_uart_write(frame + i, run);
        i += run;
        if (run == 254) {
            if (i == n) {
                /* a full block at the very end still needs its terminator
                 * block so the decoder adds no trailing 0x00 */
                code = 1;
                board_uart_write(&code, 1);
                break;
            }
            continue;
        }
        if (i == n)
            break;
        i++;                      /* the 0x00 the code implies */
        if (i == n) {             /* frame ends with 0x00: an empty last block */
            code = 1;
            board_uart_write(&code, 1);
            break;
        }
    }
    board_uart_write(&zero, 1);
}
