/* Elementwise add (residual): y = a + b. y may alias a or b. */
#include "medyate.h"

void mdy_add_f32(int32_t n, const float *a, const float *b, float *y)
{
    int32_t i;
    for (i = 0; i < n; ++i)
        y[i] = a[i] + b[i];
}
