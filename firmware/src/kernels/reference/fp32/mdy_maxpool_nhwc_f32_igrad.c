/* Max pool input gradient: each window's dy goes to the tap recorded in the
 * mask by mdy_maxpool_nhwc_f32 or mdy_maxpool_nhwc_s8 (packing:
 * ../mdy_window_index.h). A tap that is out of range (only for a window with no
 * in-range tap) routes nothing. */
#include "medyate.h"
#include "../mdy_window_index.h"

void mdy_maxpool_nhwc_f32_igrad(const mdy_pool_params *p, const uint8_t *mask,
                                const float *dy, float *dx, int accumulate)
{
    const int32_t c = p->c, b = mdy_window_index_bits(p->k_h * p->k_w);
    int32_t oh, ow, k, j;

    if (!accumulate) {
        const int32_t n = p->in_h * p->in_w * c;
        for (j = 0; j < n; ++j)
            dx[j] = 0.0f;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            for (k = 0; k < c; ++k) {
                const int32_t e = (oh * p->out_w + ow) * c + k;
                const int32_t t = mdy_window_index_get(mask, e, b);
                const int32_t ih = oh * p->stride_h + t / p->k_w - p->pad_top;
                const int32_t iw = ow * p->stride_w + t % p->k_w - p->pad_left;
                if (ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w)
                    continue;
                dx[((size_t)ih * p->in_w + iw) * c + k] += dy[e];
            }
        }
    }
}
