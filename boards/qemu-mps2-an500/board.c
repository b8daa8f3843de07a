/*
 * Board glue for QEMU mps2-an500 (Cortex-M7): CMSDK UART0, an instruction
 * counter from SysTick under -icount shift=0, semihosting exit, fault report.
 * Build with the F746's flags: the image is meant to fit and run on the chip.
 */
#include "cortex_m7.h"

#include <stdint.h>
#include <stddef.h>


/* CMSDK APB UART0 (Arm CMSDK TRM; QEMU hw/char/cmsdk-apb-uart.c). */
#define UART0_BASE     0x40004000u
#define UART_DATA      REG32(UART0_BASE + 0x00)
#define UART_STATE     REG32(UART0_BASE + 0x04)
#define UART_CTRL      REG32(UART0_BASE + 0x08)
#define UART_BAUDDIV   REG32(UART0_BASE + 0x10)
#define UART_STATE_TXFULL (1u << 0)
#define UART_STATE_RXFULL (1u << 1)

/* Armv7-M system control space. */

#define SYSTICK_RELOAD 0x00FFFFFFu

#define DATASET_ADDR   0x60000000u
#define DATASET_REGION 0x01000000u   /* the 16 MiB PSRAM from DATASET_ADDR on */

const char board_name[] = "qemu-mps2-an500";


/* SysTick runs on the machine's 25 MHz SYSCLK (QEMU hw/arm/mps2.c), which
   under -icount shift=0 (1 instruction = 1 ns) ticks once per 40
   instructions. board_cycles() reports instructions: ticks x 40, so its
   resolution is 40 instructions. */
#define SYSCLK_HZ      25000000u
#define NS_PER_TICK    (1000000000u / SYSCLK_HZ)

static uint32_t tick_last;       /* last up-count seen, 0 .. SYSTICK_RELOAD */
static uint64_t tick_high;       /* ticks of the completed periods */
static int uart_ready;

static void uart_init(void)
{
    UART_BAUDDIV = 16u;       /* the minimum the model accepts; QEMU ignores the rate */
    UART_CTRL = 0x3u;         /* TX and RX enable */
    uart_ready = 1;
}

/* Extend the 24-bit down-counter to 64 bits. A wrap shows as the up-count
   going backwards. This is folded both by readers and by the SysTick
   interrupt (which guarantees one look per period); doing it on every read
   rather than trusting the interrupt matters under QEMU, where the counter
   is seen reloaded a little before the interrupt is pending. */
static uint64_t ticks_fold(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask) :: "memory");
    uint32_t up = SYSTICK_RELOAD - (SYST_CVR & SYSTICK_RELOAD);
    if (up < tick_last)
        tick_high += (uint64_t)SYSTICK_RELOAD + 1u;
    tick_last = up;
    uint64_t t = tick_high + up;
    __asm volatile("msr primask, %0" :: "r"(primask) : "memory");
    return t;
}

void board_init(void)
{
    uart_init();
    /* Lowest priority, so that it never delays a fault report. */
    SCB_SHPR3 = (SCB_SHPR3 & 0x00FFFFFFu) | (0xFFu << 24);
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    tick_last = 0;
    tick_high = 0;
    SYST_CSR = (1u << 2) | (1u << 1) | (1u << 0); /* CLKSOURCE | TICKINT | ENABLE */
}

void SysTick_Handler(void)
{
    (void)ticks_fold();
}

uint64_t board_cycles(void)
{
    return ticks_fold() * NS_PER_TICK;
}

uint32_t board_cycles_hz(void)
{
    return 1000000000u;  /* -icount shift=0: one instruction per nanosecond */
}

void board_uart_write(const uint8_t *data, size_t n)
{
    if (!uart_ready)
        uart_init();
    for (size_t i = 0; i < n; i++) {
        while (UART_STATE & UART_STATE_TXFULL)
            ;
        UART_DATA = data[i];
    }
}

int board_uart_read(uint32_t timeout_us)
{
    if (UART_STATE & UART_STATE_RXFULL)
        return (int)(UART_DATA & 0xFFu);
    if (timeout_us == 0)
        return -1;
    uint64_t limit = (uint64_t)timeout_us * (board_cycles_hz() / 1000000u);
    uint64_t start = board_cycles();
    while (board_cycles() - start < limit) {
        if (UART_STATE & UART_STATE_RXFULL)
            return (int)(UART_DATA & 0xFFu);
    }
    return -1;
}

static int has_magic(const uint8_t *p)
{
    return p[0] == 'M' && p[1] == 'D' && p[2] == 'Y' && p[3] == 'D';
}

const uint8_t *board_dataset(void)
{
    if (__mdy_dataset_end - __mdy_dataset_start >= 4 && has_magic(__mdy_dataset_start))
        return __mdy_dataset_start;
    /* Loaded by QEMU with -device loader,file=...,addr=0x60000000 (PSRAM,
       zero-filled otherwise). */
    const uint8_t *p = (const uint8_t *)(uintptr_t)DATASET_ADDR;
    return has_magic(p) ? p : NULL;
}

uint32_t board_dataset_size(void)
{
    if (__mdy_dataset_end - __mdy_dataset_start >= 4 && has_magic(__mdy_dataset_start))
        return (uint32_t)(__mdy_dataset_end - __mdy_dataset_start);
    return DATASET_REGION;
}

void board_exit(int code)
{
    /* SYS_EXIT_EXTENDED with ADP_Stopped_ApplicationExit: QEMU exits with
       `code` (needs -semihosting-config enable=on,target=native). */
    volatile uint32_t block[2] = {0x20026u, (uint32_t)code};
    register uint32_t r0 __asm("r0") = 0x20u;
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;)
        __asm volatile("wfi");
}
