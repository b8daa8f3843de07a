/* Elementwise int8 -> int8 through a 256-entry table, Cortex-M7: the
 * reference's y[i] = table[x[i] + 128], four elements per word of x. The
 * index x + 128 of a code is its byte with the top bit flipped, so one EOR per
 * word makes the four indices, each then one extract (UXTB with rotation, or
 * a shift for the top byte), one load and one store, with two words per
 * iteration: 4.0 instructions per element against the byte loop's 6.0
 * (bench/results/kernel_instr.md). In place ok: a word is read before its
 * bytes are written. */
#include <string.h>

#include "medyate.h"

/* The four bytes of one word of x through the table, stored one by one
 * (packing them into a word costs an instruction more per byte). */
static inline void table_word(const uint8_t *t, const int8_t *x, int8_t *y)
{
    uint32_t v;
    memcpy(&v, x, 4);
    v ^= 0x80808080u;
    y[0] = (int8_t)t[v & 0xffu];
    y[1] = (int8_t)t[(v >> 8) & 0xffu];
    y[2] = (int8_t)t[(v >> 16) & 0xffu];
    y[3] = (int8_t)t[v >> 24];
}

void mdy_table_s8(int32_t n, const int8_t *table, const int8_t *x, int8_t *y)
{
    const uint8_t *t = (const uint8_t *)table;
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        table_word(t, x + i, y + i);
        table_word(t, x + i + 4, y + i + 4);
    }
    for (; i < n; ++i)
        y[i] = table[(int32_t)x[i] + 128];
}
