/*
 * Command-line access to the device's framing and order code, so tests can
 * compare them with the Python implementation byte for byte:
 *   harness order N SEED         -> the permutation, one index per line
 *   harness crc HEX              -> CRC-32 of the bytes, hex
 *   harness frame TYPE SEQ HEX   -> the frame as the device writes it, hex
 *   harness decode HEX           -> feeds the bytes to the streaming decoder;
 *                                   one line per event: "frame HEX" / "bad" / "empty"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdy_device.h"

/* The board's UART, for mdy_frame_send: hex to stdout. */
void board_uart_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        printf("%02x", data[i]);
}

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        sscanf(s, "%2x", &v);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static uint8_t buf[1u << 16];
static uint8_t frame[MDY_PROTO_FRAME_MAX + 8];
static uint16_t perm[MDY_PROTO_MAX_EPOCH_SAMPLES];

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "order")) {
        uint32_t n = (uint32_t)strtoul(argv[2], 0, 10), i;
        if (n > MDY_PROTO_MAX_EPOCH_SAMPLES)
            return 2;
        mdy_epoch_order(perm, n, (uint32_t)strtoul(argv[3], 0, 10));
        for (i = 0; i < n; i++)
            printf("%u\n", perm[i]);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "crc")) {
        size_t n = unhex(argv[2], buf, sizeof buf);
        printf("%08x\n", mdy_crc32(0, buf, n));
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "frame")) {
        size_t n = unhex(argv[4], frame + MDY_PROTO_HEADER_SIZE, MDY_PROTO_MAX_PAYLOAD);
        mdy_frame_send(frame, (uint8_t)strtoul(argv[2], 0, 0), (uint16_t)strtoul(argv[3], 0, 0),
                       (uint16_t)n);
        printf("\n");
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "decode")) {
        mdy_rx rx;
        size_t n = unhex(argv[2], buf, sizeof buf), i, k;
        mdy_rx_init(&rx, frame, MDY_PROTO_FRAME_MAX);
        for (i = 0; i < n; i++) {
            int r = mdy_rx_byte(&rx, buf[i]);
            if (r == MDY_RX_FRAME) {
                printf("frame %s ", mdy_frame_check(frame, rx.len) ? "badcrc" : "ok");
                for (k = 0; k < rx.len; k++)
                    printf("%02x", frame[k]);
                printf("\n");
            } else if (r == MDY_RX_BAD) {
                printf("bad\n");
            } else if (r == MDY_RX_EMPTY) {
                printf("empty\n");
            }
        }
        return 0;
    }
    fprintf(stderr, "usage: harness order|crc|frame|decode ...\n");
    return 2;
}
