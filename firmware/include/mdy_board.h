/*
 * mdy_board.h: what the device code needs from a board, and nothing more.
 * Each boards/<name>/ implements it (startup, clocks, UART, timer, exit).
 * The device main loop (firmware/src/device/) is written only against this.
 */
#ifndef MDY_BOARD_H
#define MDY_BOARD_H

#include <stdint.h>
#include <stddef.h>

/* Clocks, FPU, UART, counters; fills the stack with a pattern for the
 * high-water mark. Called first thing from main(). */
void board_init(void);

/* Blocking write of n bytes to the host serial link. */
void board_uart_write(const uint8_t *data, size_t n);
/* One received byte, or -1 if none arrives within timeout_us microseconds
 * (timeout_us = 0: poll once). */
int board_uart_read(uint32_t timeout_us);

/* A free-running 64-bit counter of CPU cycles (QEMU with -icount shift=0:
 * instructions) and its rate in Hz. */
uint64_t board_cycles(void);
uint32_t board_cycles_hz(void);

/* Bytes of stack ever used since board_init (pattern scan). */
uint32_t board_stack_high_water(void);
/* Bytes of stack reserved by the linker script. */
uint32_t board_stack_size(void);

/* A dataset image placed in memory at load/flash time, or NULL. */
const uint8_t *board_dataset(void);
/* Bytes readable from board_dataset() on (the file, section or memory region
 * holding it): the image's total_size must fit in them. */
uint32_t board_dataset_size(void);

/* Leave with an exit code (QEMU: semihosting SYS_EXIT_EXTENDED; board: reset
 * loop). Never returns. */
void board_exit(int code) __attribute__((noreturn));

/* Short name, e.g. "qemu-mps2-an500", reported in the device info message. */
extern const char board_name[];

#endif /* MDY_BOARD_H */
