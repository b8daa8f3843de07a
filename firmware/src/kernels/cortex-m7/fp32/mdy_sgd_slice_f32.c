/* SGD without momentum on one weight-gradient slice (see the reference for
 * the contract): w[i*stride] = w - lr*g (one fmaf), g = 0, and the squared
 * norm summed in i order with one fmaf per term, as the reference: the same
 * bits. Unrolled by 4 with pointer walking, so the loop's loads and stores
 * are immediate offsets and the index arithmetic is two adds per 4 weights. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"

float mdy_sgd_slice_f32(int32_t n, float *w, int32_t stride, float *g, float lr)
{
    const float nlr = -lr;
    float sq = 0.0f;
    int32_t i = n;
    if (stride == 1) {
        for (; i >= 4; i -= 4, w += 4, g += 4) {
            const float g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3];
            sq = fmaf(g0, g0, sq);
            sq = fmaf(g1, g1, sq);
            sq = fmaf(g2, g2, sq);
            sq = fmaf(g3, g3, sq);
            w[0] = fmaf(nlr, g0, w[0]);
            w[1] = fmaf(nlr, g1, w[1]);
            w[2] = fmaf(nlr, g2, w[2]);
            w[3] = fmaf(nlr, g3, w[3]);
            g[0] = g[1] = g[2] = g[3] = 0.0f;
        }
    }
    for (; i > 0; --i, w += stride, ++g) {
        const float gi = *g;
        sq = fmaf(gi, gi, sq);
        *w = fmaf(nlr, gi, *w);
        *g = 0.0f;
    }
    return sq;
}
