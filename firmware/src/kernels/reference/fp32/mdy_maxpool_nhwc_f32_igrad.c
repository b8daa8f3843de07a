/* Max pool input gradient: each window's dy goes to the tap recorded in the
 * mask by mdy_maxpool_nhwc_f32 (see there for the packing). A tap that is out
 * of range (only for a window with no in-range tap) routes nothing. */
#include "medyate.h"

void mdy_maxpool_nhwc_f32_igrad(const mdy_pool_params *p, const uint8_t *mask,
                                const float *dy, float *dx, int accumulate)
{
    const int32_t c = p->c;
    int32_t b = 0, oh, ow, k, j;

    while (((int32_t)1 << b) < p->k_h * p->k_w)
        ++b;
    if (!accumulate) {
        const int32_t n = p->in_h * p->in_w * c;
        for (j = 0; j < n; ++j)
            dx[j] = 0.0f;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            for (k = 0; k < c; ++k) {
                const int32_t e = (oh * p->out_w + ow) * c + k;
                int32_t t = 0, ih, iw;
                for (j = 0; j < b; ++j) {
                    const int32_t bit = e * b + j;
                    t |= ((mask[bit >> 3] >> (bit & 7)) & 1) << j;
                }
                ih = oh * p->stride_h + t / p->k_w - p->pad_top;
                iw = ow * p->stride_w + t % p->k_w - p->pad_left;
                if (ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w)
                    continue;
                dx[((size_t)ih * p->in_w + iw) * c + k] += dy[e];
            }
        }
    }
}
