/* Max pool, NHWC; out-of-range taps are ignored (ONNX pads with -inf).
 *
 * Backward state: for each output element e (NHWC order) the position
 * t = kh*k_w + kw of the first maximum of its window, packed LSB-first in
 * b bits at bit offset e*b, b = bits needed for k_h*k_w - 1 (0 for a 1x1
 * window). One bit per input element cannot tell overlapping windows
 * (stride < kernel) apart; the packed index can, and is never larger for
 * non-overlapping ones (b <= log2(k_h*k_w) + 1 bits per window vs k_h*k_w). */
#include "medyate.h"

static int32_t index_bits(const mdy_pool_params *p)
{
    int32_t b = 0;
    while (((int32_t)1 << b) < p->k_h * p->k_w)
        ++b;
    return b;
}

int32_t mdy_maxpool_nhwc_f32_mask_bytes(const mdy_pool_params *p)
{
    const int32_t n = p->out_h * p->out_w * p->c;
    return (n * index_bits(p) + 7) / 8;
}

void mdy_maxpool_nhwc_f32(const mdy_pool_params *p, const float *x, float *y, uint8_t *mask)
{
    const int32_t c = p->c, b = index_bits(p);
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
                if (mask) {
                    for (j = 0; j < b; ++j) {
                        const int32_t bit = e * b + j;
                        if ((best_t >> j) & 1)
                            mask[bit >> 3] = (uint8_t)(mask[bit >> 3] | (1u << (bit & 7)));
                    }
                }
            }
        }
    }
}
