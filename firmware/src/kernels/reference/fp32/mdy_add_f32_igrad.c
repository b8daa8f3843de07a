/* Add input gradient: each operand receives dy unchanged, so this is a copy
 * (accumulate 0) or an accumulation (accumulate 1) of dy into dx. */
#include "medyate.h"

void mdy_add_f32_igrad(int32_t n, const float *dy, float *dx, int accumulate)
{
    int32_t i;
    for (i = 0; i < n; ++i)
        dx[i] = accumulate ? dx[i] + dy[i] : dy[i];
}
