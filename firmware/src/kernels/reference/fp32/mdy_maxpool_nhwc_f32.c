/* Max pool, NHWC; out-of-range taps are ignored (ONNX pads with -inf).
 * Backward state (optional mask): per output element the window position of
 * its first maximum, packed as ../mdy_window_index.h describes. */
#include "medyate.h"
#include "../mdy_window_index.h"

int32_t mdy_maxpool_nhwc_f32_mask_bytes(const mdy_pool_params *p)
{
    return mdy_window_index_bytes(p->out_h * p->out_w * p->c,
                                  mdy_window_index_bits(p->k_h * p->k_w));
}

void mdy_maxpool_nhwc_f32(const mdy_pool_params *p, const float *x, float *y, uint8_t *mask)
{
    const int32_t c = p->c, b = mdy_window_index_bits(p->k_h * p->k_w);
    int32_t oh, ow, k, kh, kw, j;

    if (mask) {
        const int32_t nbytes = mdy_maxpool_nhwc_f32_mask_bytes(p);
        for (j = 0; j < nbytes; ++j)
            mask[j] = 0;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            for (k = 0; k < c; ++k) {
                const int32_t e = (oh * p->out_w + ow) * c + k;
                int32_t best_t = 0, found = 0;
                float best = 0.0f; /* a window without in-range taps gives 0 */
                for (kh = 0; kh < p->k_h; ++kh) {
                    const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                    if (ih < 0 || ih >= p->in_h)
                        continue;
                    for (kw = 0; kw < p->k_w; ++kw) {
                        const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                        float v;
                        if (iw < 0 || iw >= p->in_w)
                            continue;
                        v = x[((size_t)ih * p->in_w + iw) * c + k];
                        if (!found || v > best) { /* strict: the first maximum wins */
                            best = v;
                            best_t = kh * p->k_w + kw;
                            found = 1;
                        }
                    }
                }
                y[e] = best;
                if (mask)
                    mdy_window_index_put(mask, e, b, best_t);
            }
        }
    }
}
