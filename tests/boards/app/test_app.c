/*
 * A small program for testing a board's glue on its own: a greeting, then
 * one-letter commands over the serial link.
 *
 *   E n b1..bn  echo n raw bytes back       C  print the cycle counter
 *   M           check the counter stays monotonic over 1.34e9 cycles
 *   S           stack high-water and size   D  dataset: first 8 bytes or NULL
 *   T           a read that must time out (reports cycles spent)
 *   F           read an unmapped address (must report FAULT)
 *   L           time a loop of 2,000,000 instructions
 *   X c         exit with code c
 */
#include "mdy_board.h"

#include <stdint.h>
#include <stddef.h>

#ifdef TEST_BIG_RAM
/* An array that does not fit the chip's RAM: the link must fail. */
volatile uint8_t test_big_ram_buffer[TEST_BIG_RAM];
#endif
#ifdef TEST_BIG_FLASH
const uint8_t test_big_flash_table[TEST_BIG_FLASH] = {1, 2, 3};
#endif
#ifdef TEST_DEEP_STACK
/* A frame of TEST_DEEP_STACK bytes: the build must refuse a smaller reserve. */
__attribute__((noinline)) static uint32_t test_deep_stack(uint32_t seed)
{
    volatile uint8_t buf[TEST_DEEP_STACK];
    uint32_t i, sum = 0;
    for (i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(seed + i);
    for (i = 0; i < sizeof buf; i += 64)
        sum += buf[i];
    return sum;
}
#endif
#ifdef TEST_RECURSION
/* Recursion has no static stack bound: the build must say so. */
__attribute__((noinline)) static uint32_t test_recursion(uint32_t n)
{
    volatile uint32_t keep = n;
    return n < 2 ? keep : test_recursion(n - 1) + test_recursion(n - 2) + keep;
}
#endif

static void put(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    board_uart_write((const uint8_t *)s, n);
}

static void put_u64(uint64_t v)
{
    char buf[24];
    int i = (int)sizeof buf;
    buf[--i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put(&buf[i]);
}

static int get_blocking(void)
{
    int c;
    while ((c = board_uart_read(1000000u)) < 0)
        ;
    return c;
}

static void echo(void)
{
    int n = get_blocking();
    uint8_t buf[256];
    for (int i = 0; i < n; i++)
        buf[i] = (uint8_t)get_blocking();
    board_uart_write(buf, (size_t)n);
}

#if defined(__arm__)
/* Exactly 2 instructions per iteration; not inlined, so that an instruction
 * profile can count it as a function of its own. */
__attribute__((noinline)) static void spin_2(uint32_t n)
{
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) :: "cc");
}
/* ~3000 instructions in long straight runs (fast to emulate). */
static void spin_3000(void)
{
    uint32_t k = 100u, junk = 0;
    __asm volatile("1: .rept 30\n adds %1, %1, #1\n .endr\n subs %0, %0, #1\n bne 1b"
                   : "+r"(k), "+r"(junk) :: "cc");
}
#else
static void spin_2(uint32_t n)
{
    for (volatile uint32_t i = 0; i < n; i++)
        ;
}
static void spin_3000(void)
{
    spin_2(1500u);
}
#endif

static void monotonic(void)
{
    /* 1.34e9 cycles: past two wraps of QEMU's SysTick (2^24 ticks of 40
       instructions). Reads are spaced by ~2000 instructions: under QEMU
       -icount every device-register read is slow to emulate. */
    uint64_t first = board_cycles(), prev = first, now = first;
    uint32_t reads = 0, bad = 0;
    while (now - first < (5ull << 28)) {
        spin_3000();
        now = board_cycles();
        if (now < prev)
            bad++;
        prev = now;
        reads++;
    }
    put("MONO ");
    put_u64(bad);
    put(" ");
    put_u64(reads);
    put(" ");
    put_u64(now - first);
    put("\n");
}

int main(void)
{
    board_init();
    put("HELLO ");
    put(board_name);
    put("\n");
#ifdef TEST_BIG_RAM
    test_big_ram_buffer[board_cycles() % TEST_BIG_RAM] = 1;
#endif
#ifdef TEST_BIG_FLASH
    put_u64(test_big_flash_table[board_cycles() % TEST_BIG_FLASH]);
#endif
#ifdef TEST_DEEP_STACK
    put_u64(test_deep_stack((uint32_t)board_cycles()));
#endif
#ifdef TEST_RECURSION
    put_u64(test_recursion((uint32_t)board_cycles() % 20u));
#endif
    for (;;) {
        int cmd = get_blocking();
        switch (cmd) {
        case 'E':
            echo();
            break;
        case 'C':
            put("CYC ");
            put_u64(board_cycles());
            put(" ");
            put_u64(board_cycles_hz());
            put("\n");
            break;
        case 'M':
            monotonic();
            break;
        case 'L': {
            /* 2 instructions per iteration: the cycles-per-instruction check. */
            uint32_t n = 1000000u;
            uint64_t t = board_cycles();
            spin_2(n);
            t = board_cycles() - t;
            put("LOOP ");
            put_u64(t);
            put("\n");
            break;
        }
        case 'S':
            put("STACK ");
            put_u64(board_stack_high_water());
            put(" ");
            put_u64(board_stack_size());
            put("\n");
            break;
        case 'D': {
            const uint8_t *d = board_dataset();
            if (!d) {
                put("DATA NULL\n");
            } else {
                put("DATA ");
                board_uart_write(d, 8);
                put("\n");
            }
            break;
        }
        case 'T': {
            uint64_t t = board_cycles();
            int c = board_uart_read(2000u);
            put("TIMEOUT ");
            put_u64((uint64_t)(c + 1));
            put(" ");
            put_u64(board_cycles() - t);
            put("\n");
            break;
        }
        case 'F': {
            volatile uint32_t *bad = (volatile uint32_t *)(uintptr_t)0xF0000000u;
            put("READING\n");
            put_u64(*bad);
            put("\n");
            break;
        }
        case 'X':
            board_exit(get_blocking());
            break;
        default:
            break;
        }
    }
}
