/* Fully connected: y[o] = sum_i w[o][i] x[i] + b[o]; w is [out][in].
 * Register-blocked: 8 outputs at a time share each load of x[i], and the
 * input loop is unrolled by 4 so that every load is an immediate offset from
 * one pointer per weight row. Each output sums bias, then i = 0.. with one
 * fmaf per term, as the reference does: bit-identical. Every weight is used
 * once, so one load per MAC is the floor of this kernel. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

MDY_AI void fc_block(const int NO, int32_t n, const float *x, const float *w0,
                     const float *bias, float *y)
{
    float acc[8];
    const float *wp[8];
    const float *xp = x;
    int32_t i;
    int k;
MDY_UNROLL(8)
    for (k = 0; k < NO; ++k) {
        wp[k] = w0 + (size_t)k * n;
        acc[k] = bias ? bias[k] : 0.0f;
    }
    for (i = n; i >= 4; i -= 4) {
        int u;
MDY_UNROLL(4)
        for (u = 0; u < 4; ++u) {
            const float xv = xp[u];
MDY_UNROLL(8)
            for (k = 0; k < NO; ++k)
                acc[k] = fmaf(wp[k][u], xv, acc[k]);
        }
        xp += 4;
MDY_UNROLL(8)
        for (k = 0; k < NO; ++k)
            wp[k] += 4;
    }
    for (; i > 0; --i) {
        const float xv = *xp++;
MDY_UNROLL(8)
        for (k = 0; k < NO; ++k)
            acc[k] = fmaf(*wp[k]++, xv, acc[k]);
    }
MDY_UNROLL(8)
    for (k = 0; k < NO; ++k)
        y[k] = acc[k];
}

void mdy_fully_connected_f32(int32_t in_features, int32_t out_features,
                             const float *x, const float *w, const float *bias, float *y)
{
    int32_t o = 0;
    for (; o + 8 <= out_features; o += 8)
        fc_block(8, in_features, x, w + (size_t)o * in_features, bias ? bias + o : NULL, y + o);
    if (o + 4 <= out_features) {
        fc_block(4, in_features, x, w + (size_t)o * in_features, bias ? bias + o : NULL, y + o);
        o += 4;
    }
    for (; o < out_features; ++o)
        fc_block(1, in_features, x, w + (size_t)o * in_features, bias ? bias + o : NULL, y + o);
}
