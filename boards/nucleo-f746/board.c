/*
 * Board glue for the NUCLEO-F746ZG (STM32F746ZG): 216 MHz clock tree, USART3
 * on the ST-LINK virtual COM port, the DWT cycle counter, fault report.
 *
 * Every register address and bit below is from ST's RM0385 (rev. 8); the
 * section is given beside each group. Not yet run on hardware by this
 * project: see boards/nucleo-f746/README.md.
 */
#include "cortex_m7.h"

#include <stdint.h>
#include <stddef.h>


#ifndef MEDYATE_UART_BAUD
#define MEDYATE_UART_BAUD 115200u
#endif
/* 1: 8 MHz HSE in bypass mode from the ST-LINK's MCO (needs the solder
   bridges of UM1974 section 6.7.1 as shipped); 0: the 16 MHz HSI, which is
   always there. Both give 216 MHz. */
#ifndef MEDYATE_NUCLEO_HSE_BYPASS
#define MEDYATE_NUCLEO_HSE_BYPASS 0
#endif

/* RCC, RM0385 section 5.3; base 0x40023800 (section 2.2.2, table 1). */
#define RCC_BASE        0x40023800u
#define RCC_CR          REG32(RCC_BASE + 0x00)
#define RCC_PLLCFGR     REG32(RCC_BASE + 0x04)
#define RCC_CFGR        REG32(RCC_BASE + 0x08)
#define RCC_AHB1ENR     REG32(RCC_BASE + 0x30)
#define RCC_APB1ENR     REG32(RCC_BASE + 0x40)
#define RCC_DCKCFGR2    REG32(RCC_BASE + 0x90)
#define RCC_CR_HSION    (1u << 0)
#define RCC_CR_HSIRDY   (1u << 1)
#define RCC_CR_HSEON    (1u << 16)
#define RCC_CR_HSERDY   (1u << 17)
#define RCC_CR_HSEBYP   (1u << 18)
#define RCC_CR_PLLON    (1u << 24)
#define RCC_CR_PLLRDY   (1u << 25)
#define RCC_PLLCFGR_PLLSRC_HSE (1u << 22)
#define RCC_CFGR_SW_PLL  0x2u          /* SW[1:0] */
#define RCC_CFGR_SWS_MASK (0x3u << 2)  /* SWS[3:2] */
#define RCC_CFGR_SWS_PLL (0x2u << 2)
#define RCC_CFGR_PPRE1_DIV4 (0x5u << 10) /* PPRE1[12:10] = 101 */
#define RCC_CFGR_PPRE2_DIV2 (0x4u << 13) /* PPRE2[15:13] = 100 */
#define RCC_AHB1ENR_GPIODEN (1u << 3)
#define RCC_APB1ENR_USART3EN (1u << 18)
#define RCC_APB1ENR_PWREN (1u << 28)
#define RCC_DCKCFGR2_USART3SEL_MASK (0x3u << 4) /* 00: PCLK1 */

/* PWR, RM0385 section 4.4; base 0x40007000. */
#define PWR_BASE        0x40007000u
#define PWR_CR1         REG32(PWR_BASE + 0x00)
#define PWR_CSR1        REG32(PWR_BASE + 0x04)
#define PWR_CR1_VOS_SCALE1 (0x3u << 14)
#define PWR_CR1_ODEN    (1u << 16)
#define PWR_CR1_ODSWEN  (1u << 17)
#define PWR_CSR1_ODRDY  (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)

/* Flash interface, RM0385 section 3.7.1 (FLASH_ACR); base 0x40023C00. */
#define FLASH_ACR       REG32(0x40023C00u)
#define FLASH_ACR_LATENCY_7WS 0x7u
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ARTEN  (1u << 9)
#define FLASH_ACR_ARTRST (1u << 11)

/* GPIOD, RM0385 section 6.4; base 0x40020C00. */
#define GPIOD_BASE      0x40020C00u
#define GPIOD_MODER     REG32(GPIOD_BASE + 0x00)
#define GPIOD_OSPEEDR   REG32(GPIOD_BASE + 0x08)
#define GPIOD_PUPDR     REG32(GPIOD_BASE + 0x0C)
#define GPIOD_AFRH      REG32(GPIOD_BASE + 0x24)

/* USART3, RM0385 section 34.8; base 0x40004800. */
#define USART3_BASE     0x40004800u
#define USART3_CR1      REG32(USART3_BASE + 0x00)
#define USART3_CR3      REG32(USART3_BASE + 0x08)
#define USART3_BRR      REG32(USART3_BASE + 0x0C)
#define USART3_ISR      REG32(USART3_BASE + 0x1C)
#define USART3_ICR      REG32(USART3_BASE + 0x20)
#define USART3_RDR      REG32(USART3_BASE + 0x24)
#define USART3_TDR      REG32(USART3_BASE + 0x28)
#define USART_CR1_UE    (1u << 0)
#define USART_CR1_RE    (1u << 2)
#define USART_CR1_TE    (1u << 3)
#define USART_CR3_OVRDIS (1u << 12)
#define USART_ISR_ORE   (1u << 3)
#define USART_ISR_RXNE  (1u << 5)
#define USART_ISR_TC    (1u << 6)
#define USART_ISR_TXE   (1u << 7)
#define USART_ICR_ORECF (1u << 3)

/* Cortex-M7 system registers (Armv7-M ARM B3.2, Cortex-M7 TRM). */
#define SCB_CCSIDR      REG32(0xE000ED80u)
#define SCB_CSSELR      REG32(0xE000ED84u)
#define SCB_ICIALLU     REG32(0xE000EF50u)
#define SCB_DCISW       REG32(0xE000EF60u)
#define SCB_CCR_DC      (1u << 16)
#define SCB_CCR_IC      (1u << 17)
#define DEMCR           REG32(0xE000EDFCu)
#define DEMCR_TRCENA    (1u << 24)
#define DWT_CTRL        REG32(0xE0001000u)
#define DWT_CYCCNT      REG32(0xE0001004u)
#define DWT_LAR         REG32(0xE0001FB0u)

#define CPU_HZ          216000000u
#define PCLK1_HZ        (CPU_HZ / 4u)   /* APB1 at most 54 MHz (datasheet) */

const char board_name[] = "nucleo-f746";

extern void (*const mdy_vectors[16])(void);

static int uart_ready;
static uint32_t uart_pclk = 16000000u;  /* HSI until the PLL runs */

static inline void dsb_isb(void)
{
    __asm volatile("dsb 0xF\n isb 0xF" ::: "memory");
}

static void clocks_init(void)
{
    /* PWR clock on; voltage scale 1 (the reset value, set anyway). */
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR;
    PWR_CR1 |= PWR_CR1_VOS_SCALE1;

    RCC_CR |= RCC_CR_HSION;
    while (!(RCC_CR & RCC_CR_HSIRDY))
        ;

    /* PLL: VCO input 2 MHz (M), VCO 432 MHz (N = 216), SYSCLK = VCO / 2 =
       216 MHz (P), 48 MHz domain = VCO / 9 (Q). RM0385 section 5.3.2. */
#if MEDYATE_NUCLEO_HSE_BYPASS
    RCC_CR |= RCC_CR_HSEBYP | RCC_CR_HSEON;
    while (!(RCC_CR & RCC_CR_HSERDY))
        ;
    const uint32_t pllm = 4u, src = RCC_PLLCFGR_PLLSRC_HSE;
#else
    const uint32_t pllm = 8u, src = 0u;
#endif
    RCC_CR &= ~RCC_CR_PLLON;
    while (RCC_CR & RCC_CR_PLLRDY)
        ;
    RCC_PLLCFGR = pllm | (216u << 6) | (0u << 16) /* P = 2 */ | src | (9u << 24);
    RCC_CR |= RCC_CR_PLLON;

    /* Over-drive, needed above 180 MHz: RM0385 section 4.1.4, in its order
       (PLL enabled, ODEN, wait ODRDY, ODSWEN, wait ODSWRDY). */
    PWR_CR1 |= PWR_CR1_ODEN;
    while (!(PWR_CSR1 & PWR_CSR1_ODRDY))
        ;
    PWR_CR1 |= PWR_CR1_ODSWEN;
    while (!(PWR_CSR1 & PWR_CSR1_ODSWRDY))
        ;

    /* 7 wait states for 210-216 MHz at 2.7-3.6 V (RM0385 table 5), with the
       ART accelerator and prefetch. The ART serves the flash on the ITCM
       interface; code here runs from the AXIM address through the L1 cache,
       enabled below. Reset the ART while it is off, then enable it. */
    FLASH_ACR = FLASH_ACR_ARTRST;
    FLASH_ACR = FLASH_ACR_LATENCY_7WS | FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN;
    while ((FLASH_ACR & FLASH_ACR_LATENCY_MASK) != FLASH_ACR_LATENCY_7WS)
        ;

    /* AHB 216 MHz, APB1 54 MHz, APB2 108 MHz. */
    RCC_CFGR = (RCC_CFGR & ~0xFCF0u) | RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2;
    while (!(RCC_CR & RCC_CR_PLLRDY))
        ;
    RCC_CFGR = (RCC_CFGR & ~0x3u) | RCC_CFGR_SW_PLL;
    while ((RCC_CFGR & RCC_CFGR_SWS_MASK) != RCC_CFGR_SWS_PLL)
        ;
    uart_pclk = PCLK1_HZ;
}

static void caches_init(void)
{
    /* I-cache: invalidate, then enable (Cortex-M7 TRM / Armv7-M B2.2.7). */
    dsb_isb();
    SCB_ICIALLU = 0;
    dsb_isb();
    SCB_CCR |= SCB_CCR_IC;
    dsb_isb();

    /* D-cache: invalidate every line by set/way, then enable. */
    SCB_CSSELR = 0;           /* level 1 data cache */
    dsb_isb();
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = (ccsidr >> 13) & 0x7FFFu;
    uint32_t ways0 = (ccsidr >> 3) & 0x3FFu;
    do {
        uint32_t ways = ways0;
        do {
            SCB_DCISW = ((sets & 0x1FFu) << 5) | ((ways & 0x3u) << 30);
        } while (ways-- != 0u);
    } while (sets-- != 0u);
    dsb_isb();
    SCB_CCR |= SCB_CCR_DC;
    dsb_isb();
}

static void uart_init(void)
{
    /* PD8 = USART3_TX, PD9 = USART3_RX, alternate function 7 (STM32F746
       datasheet table 12); the ST-LINK VCP (UM1974 section 6.9). */
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIODEN;
    RCC_APB1ENR |= RCC_APB1ENR_USART3EN;
    (void)RCC_APB1ENR;
    RCC_DCKCFGR2 &= ~RCC_DCKCFGR2_USART3SEL_MASK;     /* kernel clock PCLK1 */
    GPIOD_MODER = (GPIOD_MODER & ~(0xFu << 16)) | (0xAu << 16);  /* AF mode */
    GPIOD_OSPEEDR |= (0xFu << 16);                              /* very high */
    GPIOD_PUPDR = (GPIOD_PUPDR & ~(0xFu << 16)) | (0x1u << 18); /* RX pull-up */
    GPIOD_AFRH = (GPIOD_AFRH & ~0xFFu) | 0x77u;                 /* AF7, AF7 */

    USART3_CR1 = 0;
    /* Oversampling by 16: BRR = f_ck / baud (RM0385 section 34.5.4). */
    USART3_BRR = (uart_pclk + MEDYATE_UART_BAUD / 2u) / MEDYATE_UART_BAUD;
    /* A late read loses a byte rather than stalling reception on ORE; the
       protocol's CRC notices the loss. */
    USART3_CR3 = USART_CR3_OVRDIS;
    USART3_CR1 = USART_CR1_UE | USART_CR1_RE | USART_CR1_TE;
    uart_ready = 1;
}

/* ----------------------------------------------------------- cycle counter */

static uint32_t cyc_last;
static uint32_t cyc_high;

static uint64_t cycles_update(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask) :: "memory");
    uint32_t now = DWT_CYCCNT;
    if (now < cyc_last)
        cyc_high++;
    cyc_last = now;
    uint64_t v = ((uint64_t)cyc_high << 32) | now;
    __asm volatile("msr primask, %0" :: "r"(primask) : "memory");
    return v;
}

/* DWT_CYCCNT wraps every 19.9 s at 216 MHz. SysTick fires every 2^24 cycles
   (78 ms) and folds the count, so no wrap is missed even if the program does
   not ask for the time for a long while. */
void SysTick_Handler(void)
{
    (void)cycles_update();
}

uint64_t board_cycles(void)
{
    return cycles_update();
}

uint32_t board_cycles_hz(void)
{
    return CPU_HZ;
}

void board_init(void)
{
    SCB_VTOR = (uint32_t)(uintptr_t)mdy_vectors;
    clocks_init();
    caches_init();
    uart_init();

    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u;     /* software access to the DWT on the M7 */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;            /* CYCCNTENA */
    cyc_last = 0;
    cyc_high = 0;

    SCB_SHPR3 = (SCB_SHPR3 & 0x00FFFFFFu) | (0xFFu << 24);
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = (1u << 2) | (1u << 1) | (1u << 0);
}

void board_uart_write(const uint8_t *data, size_t n)
{
    if (!uart_ready)
        uart_init();
    for (size_t i = 0; i < n; i++) {
        while (!(USART3_ISR & USART_ISR_TXE))
            ;
        USART3_TDR = data[i];
    }
}

static int uart_getc(void)
{
    uint32_t isr = USART3_ISR;
    if (isr & USART_ISR_ORE)
        USART3_ICR = USART_ICR_ORECF;
    if (isr & USART_ISR_RXNE)
        return (int)(USART3_RDR & 0xFFu);
    return -1;
}

int board_uart_read(uint32_t timeout_us)
{
    int c = uart_getc();
    if (c >= 0 || timeout_us == 0)
        return c;
    uint64_t limit = (uint64_t)timeout_us * (CPU_HZ / 1000000u);
    uint64_t start = board_cycles();
    while (board_cycles() - start < limit) {
        c = uart_getc();
        if (c >= 0)
            return c;
    }
    return -1;
}

const uint8_t *board_dataset(void)
{
    const uint8_t *p = __mdy_dataset_start;
    if (__mdy_dataset_end - p >= 4 && p[0] == 'M' && p[1] == 'D' && p[2] == 'Y' && p[3] == 'D')
        return p;
    return NULL;
}

uint32_t board_dataset_size(void)
{
    return (uint32_t)(__mdy_dataset_end - __mdy_dataset_start);
}

void board_exit(int code)
{
    /* No one to hand the code to: report it as a text line, let the UART
       drain, and stop here (a reset would restart the program and talk to
       the host again). */
    char buf[12];
    uint32_t u = code < 0 ? (uint32_t)(-(int64_t)code) : (uint32_t)code;
    int i = (int)sizeof buf;
    buf[--i] = 0;
    do {
        buf[--i] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u && i > 1);
    if (code < 0)
        buf[--i] = '-';
    cm7_put_str("\nEXIT ");
    cm7_put_str(&buf[i]);
    cm7_put_str("\n");
    while (!(USART3_ISR & USART_ISR_TC))
        ;
    __asm volatile("cpsid i" ::: "memory");
    for (;;)
        __asm volatile("wfi");
}
