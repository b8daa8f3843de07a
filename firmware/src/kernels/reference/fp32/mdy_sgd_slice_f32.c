/* SGD without momentum on one weight-gradient slice. The slice is contiguous
 * while its weights are strided in the OHWI array (W[:, c] of a dense conv has
 * stride in_c), hence `stride`. Zeroes the slice for the next mini-batch and
 * returns its squared norm (the channel-importance statistic). */
#include <math.h>

#include "medyate.h"

float mdy_sgd_slice_f32(int32_t n, float *w, int32_t stride, float *g, float lr)
{
    float sq = 0.0f;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float gi = g[i];
        sq = fmaf(gi, gi, sq);
        w[(size_t)i * stride] = fmaf(-lr, gi, w[(size_t)i * stride]); /* w - lr*g, one rounding */
        g[i] = 0.0f;
    }
    return sq;
}
