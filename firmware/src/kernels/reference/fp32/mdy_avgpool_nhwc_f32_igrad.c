/* Average pool input gradient: each in-range tap of a window receives the
 * window's dy divided by the same count the forward used. */
#include <math.h>

#include "medyate.h"

void mdy_avgpool_nhwc_f32_igrad(const mdy_pool_params *p, const float *dy, float *dx, int accumulate)
{
    const int32_t c = p->c;
    int32_t oh, ow, k, kh, kw;

    if (!accumulate) {
        const int32_t n = p->in_h * p->in_w * c;
        int32_t i;
        for (i = 0; i < n; ++i)
            dx[i] = 0.0f;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        const int32_t h0 = oh * p->stride_h - p->pad_top;
        const int32_t hlo = h0 < 0 ? 0 : h0;
        const int32_t hhi = h0 + p->k_h > p->in_h ? p->in_h : h0 + p->k_h;
        for (ow = 0; ow < p->out_w; ++ow) {
            const int32_t w0 = ow * p->stride_w - p->pad_left;
            const int32_t wlo = w0 < 0 ? 0 : w0;
            const int32_t whi = w0 + p->k_w > p->in_w ? p->in_w : w0 + p->k_w;
            const float *dyp = dy + ((size_t)oh * p->out_w + ow) * c;
            int32_t count;
            float inv;
            if (hhi <= hlo || whi <= wlo)
                continue; /* no in-range tap: nothing to route */
            count = p->count_include_pad ? p->k_h * p->k_w : (hhi - hlo) * (whi - wlo);
            inv = 1.0f / (float)count;
            for (kh = hlo; kh < hhi; ++kh) {
                for (kw = wlo; kw < whi; ++kw) {
                    float *dxp = dx + ((size_t)kh * p->in_w + kw) * c;
                    for (k = 0; k < c; ++k)
                        dxp[k] = fmaf(dyp[k], inv, dxp[k]);
                }
            }
        }
    }
}
