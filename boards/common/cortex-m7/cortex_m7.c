/*
 * What the Cortex-M7 boards share: the vector table, the fault handler that
 * reports over the board's UART and exits with FAULT_EXIT_CODE, and the
 * stack accounting (the stack is painted by startup.S).
 */
#include "cortex_m7.h"

uint32_t board_stack_size(void)
{
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_bottom);
}

uint32_t board_stack_high_water(void)
{
    /* The stack grows down from __stack_top; the lowest word that no longer
       holds the pattern (painted by startup.S) marks the deepest use. */
    const uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == STACK_PATTERN)
        p++;
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

/* ------------------------------------------------------------------ faults */

void cm7_put_str(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    board_uart_write((const uint8_t *)s, n);
}

static void put_hex(const char *label, uint32_t v)
{
    char buf[16];
    static const char digits[] = "0123456789abcdef";
    cm7_put_str(label);
    buf[0] = '0';
    buf[1] = 'x';
    for (int i = 0; i < 8; i++)
        buf[2 + i] = digits[(v >> (28 - 4 * i)) & 0xFu];
    buf[10] = 0;
    cm7_put_str(buf);
}

/* Called with the exception frame pushed on fault entry (r0-r3, r12, lr, pc,
   xpsr), or NULL if that stack pointer was unusable. One plain-text line, so
   that a host reading binary frames can still recognise it. */
void mdy_fault_report(const uint32_t *frame, uint32_t exc_return, uint32_t ipsr)
    __attribute__((noreturn, used));
void mdy_fault_report(const uint32_t *frame, uint32_t exc_return, uint32_t ipsr)
{
    (void)exc_return;
    cm7_put_str("\nFAULT");
    put_hex(" exc=", ipsr & 0x1FFu);
    put_hex(" CFSR=", SCB_CFSR);
    put_hex(" HFSR=", SCB_HFSR);
    put_hex(" MMFAR=", SCB_MMFAR);
    put_hex(" BFAR=", SCB_BFAR);
    if (frame) {
        put_hex(" PC=", frame[6]);
        put_hex(" LR=", frame[5]);
        put_hex(" XPSR=", frame[7]);
    }
    cm7_put_str("\n");
    board_exit(FAULT_EXIT_CODE);
}

/* All faults and unexpected exceptions land here. Pick the stack the frame was
   pushed on (EXC_RETURN bit 2), reject a frame outside RAM (a stack overflow
   that faulted while stacking), then report in C on the main stack. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm volatile(
        "tst   lr, #4\n"
        "ite   eq\n"
        "mrseq r0, msp\n"
        "mrsne r0, psp\n"
        "ldr   r1, =__stack_bottom\n"
        "cmp   r0, r1\n"
        "blo   1f\n"
        "ldr   r1, =__ram_end\n"
        "cmp   r0, r1\n"
        "blo   2f\n"
        "1: movs r0, #0\n"
        "2: mov  r1, lr\n"
        "mrs   r2, ipsr\n"
        "ldr   r3, =__stack_top\n"
        "mov   sp, r3\n"
        "b     mdy_fault_report\n");
}

void NMI_Handler(void) __attribute__((alias("HardFault_Handler")));
void MemManage_Handler(void) __attribute__((alias("HardFault_Handler")));
void BusFault_Handler(void) __attribute__((alias("HardFault_Handler")));
void UsageFault_Handler(void) __attribute__((alias("HardFault_Handler")));
void Default_Handler(void) __attribute__((alias("HardFault_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("HardFault_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("HardFault_Handler")));

extern void Reset_Handler(void);

/* The vector table, first in flash (the linker script places .isr_vector at
   the FLASH origin: 0 on QEMU, 0x08000000 on the F746, where board_init
   points VTOR at it). Only the system exceptions are listed: no peripheral
   interrupt is ever enabled. SysTick_Handler is the board's. */
__attribute__((section(".isr_vector"), used))
void (*const mdy_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
};
