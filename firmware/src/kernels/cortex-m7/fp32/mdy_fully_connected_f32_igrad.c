/* Fully connected input gradient: dx[i] = sum_o w[o][i] dy[o].
 * Register-blocked over 16 inputs: one load of dy[o] serves 16 adjacent
 * weights of row o (immediate offsets from one pointer). Each input sums
 * o = 0.. from zero with one fmaf per term and is then added to dx (when
 * accumulating), as the reference does: bit-identical. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

MDY_AI void fc_igrad_block(const int NI, int32_t in_features, int32_t out_features,
                           const float *w0, const float *dy, float *dx, int accumulate)
{
    float acc[16];
    const float *wp = w0;
    int32_t o;
    int q;
MDY_UNROLL(16)
    for (q = 0; q < NI; ++q)
        acc[q] = 0.0f;
    for (o = 0; o < out_features; ++o) {
        const float g = dy[o];
MDY_UNROLL(16)
        for (q = 0; q < NI; ++q)
            acc[q] = fmaf(wp[q], g, acc[q]);
        wp += in_features;
    }
MDY_UNROLL(16)
    for (q = 0; q < NI; ++q)
        dx[q] = accumulate ? dx[q] + acc[q] : acc[q];
}

void mdy_fully_connected_f32_igrad(int32_t in_features, int32_t out_features,
                                   const float *w, const float *dy, float *dx, int accumulate)
{
    int32_t i = 0;
    for (; i + 16 <= in_features; i += 16)
        fc_igrad_block(16, in_features, out_features, w + i, dy, dx + i, accumulate);
    if (i + 8 <= in_features) {
        fc_igrad_block(8, in_features, out_features, w + i, dy, dx + i, accumulate);
        i += 8;
    }
    if (i + 4 <= in_features) {
        fc_igrad_block(4, in_features, out_features, w + i, dy, dx + i, accumulate);
        i += 4;
    }
    for (; i < in_features; ++i)
        fc_igrad_block(1, in_features, out_features, w + i, dy, dx + i, accumulate);
}
