/* Shared by the Cortex-M7 boards (boards/common/cortex-m7). */
#ifndef MDY_CORTEX_M7_H
#define MDY_CORTEX_M7_H

#include <stddef.h>
#include <stdint.h>

#include "mdy_board.h"

#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* Armv7-M system control block (ARM DDI 0403, B3.2). */
#define SCB_VTOR        REG32(0xE000ED08u)
#define SCB_CCR         REG32(0xE000ED14u)
#define SCB_SHPR3       REG32(0xE000ED20u)
#define SCB_CFSR        REG32(0xE000ED28u)
#define SCB_HFSR        REG32(0xE000ED2Cu)
#define SCB_MMFAR       REG32(0xE000ED34u)
#define SCB_BFAR        REG32(0xE000ED38u)
#define SYST_CSR        REG32(0xE000E010u)
#define SYST_RVR        REG32(0xE000E014u)
#define SYST_CVR        REG32(0xE000E018u)

#define STACK_PATTERN   0xDEADBEEFu   /* startup.S paints the stack with it */
#define FAULT_EXIT_CODE 3

extern uint32_t __stack_bottom[], __stack_top[];
extern const uint8_t __mdy_dataset_start[], __mdy_dataset_end[];

/* Plain text to the board's UART (fault and exit reports). */
void cm7_put_str(const char *s);

/* The vector table (cortex_m7.c), for boards that set VTOR. */
extern void (*const mdy_vectors[16])(void);

/* Each board defines it (the cycle counter's overflow tick). */
void SysTick_Handler(void);

#endif
