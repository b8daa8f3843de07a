/*
 * libFuzzer target: the device's frame parser and dispatcher on the host
 * board, under ASan/UBSan. Each input is a byte stream fed to
 * mdy_device_rx_byte exactly as the UART would deliver it, closed by a
 * delimiter; the device state (session, weights, selection) carries over
 * between inputs, as it does on a board talking to a host.
 *
 * Linked with --wrap=board_exit,--wrap=board_uart_write: SHUTDOWN must not end
 * the fuzzing process (libFuzzer counts an exit as a crash), and the answers
 * are dropped rather than written to stdout.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "mdy_board.h"
#include "mdy_device.h"

static jmp_buf on_exit_jmp;
static int inited;
/* framed mode: the encoder's output is captured here, then fed to the device */
static uint8_t tx[MDY_PROTO_FRAME_MAX + 8];
static uint8_t wire[2 * MDY_PROTO_FRAME_MAX + 16];
static size_t wire_len;
static int capture;

void __wrap_board_exit(int code)
{
    (void)code;
    longjmp(on_exit_jmp, 1);
}

void __wrap_board_uart_write(const uint8_t *data, size_t n)
{
    if (!capture)
        return;   /* an answer of the device: dropped */
    for (size_t i = 0; i < n && wire_len < sizeof wire; i++)
        wire[wire_len++] = data[i];
}

static void send_framed(const uint8_t *data, size_t size)
{
    size_t i = 0;
    while (i + 4 <= size) {
        uint8_t type = data[i], seq = data[i + 1];
        size_t len = (size_t)data[i + 2] | (size_t)data[i + 3] << 8;
        i += 4;
        if (len > size - i)
            len = size - i;
        if (len > MDY_PROTO_MAX_PAYLOAD)
            len = MDY_PROTO_MAX_PAYLOAD;
        for (size_t k = 0; k < len; k++)
            tx[MDY_PROTO_HEADER_SIZE + k] = data[i + k];
        i += len;
        capture = 1;
        wire_len = 0;
        mdy_frame_send(tx, type, seq, (uint16_t)len);
        capture = 0;
        for (size_t k = 0; k < wire_len; k++)
            mdy_device_rx_byte(wire[k]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!inited) {
        board_init();
        mdy_device_init();
        inited = 1;
    }
    if (setjmp(on_exit_jmp)) {
        /* SHUTDOWN: a board would restart; start the device afresh */
        mdy_device_init();
        return 0;
    }
    capture = 0;
    if (size && (data[0] & 1)) {
        send_framed(data + 1, size - 1);
        return 0;
    }
    for (size_t i = 0; i < size; i++)
        mdy_device_rx_byte(data[i]);
    mdy_device_rx_byte(0);
    return 0;
}
