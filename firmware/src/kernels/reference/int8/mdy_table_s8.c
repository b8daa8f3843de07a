/* Elementwise int8 -> int8 through a 256-entry table: y[i] = table[x[i] + 128].
 * Hard-swish, hard-sigmoid and any stand-alone clamp or rescale are functions
 * of one int8 code, so a table built on the host from the op's float
 * definition and its quantization (medyate.planner.quant.*_table) gives the
 * correctly rounded result for every code at one load per element, and 256
 * bytes of flash per op. In place ok. */
#include "medyate.h"

void mdy_table_s8(int32_t n, const int8_t *table, const int8_t *x, int8_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i)
        y[i] = table[(int32_t)x[i] + 128];
}
