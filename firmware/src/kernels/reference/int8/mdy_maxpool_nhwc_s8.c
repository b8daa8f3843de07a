/* Max pool, int8, NHWC: the largest code of the in-range taps (ONNX pads with
 * -inf), then the rescale to the output's quantization. A positive rescale is
 * monotone, so max-then-rescale equals rescale-then-max; with an identity
 * rescale the codes pass unchanged.
 *
 * Backward state (optional mask): the fp32 max pool's, for the fp32 backward
 * mdy_maxpool_nhwc_f32_igrad. Same scan order and the same strict comparison
 * (the first maximum wins), on the codes: dequantizing is monotone and keeps
 * distinct codes distinct, so the index equals the fp32 kernel's on the
 * dequantized input. */
#include "medyate.h"
#include "mdy_requantize.h"
#include "../mdy_window_index.h"

void mdy_maxpool_nhwc_s8(const mdy_pool_params *p, const mdy_s8_rescale *q,
                         const int8_t *x, int8_t *y, uint8_t *mask)
{
    const int32_t c = p->c, b = mdy_window_index_bits(p->k_h * p->k_w);
    int32_t oh, ow, k, kh, kw, j;

    if (mask) {
        const int32_t nbytes = mdy_window_index_bytes(p->out_h * p->out_w * c, b);
        for (j = 0; j < nbytes; ++j)
            mask[j] = 0;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            for (k = 0; k < c; ++k) {
                const int32_t e = (oh * p->out_w + ow) * c + k;
                int32_t best = INT32_MIN, best_t = 0, v;
                for (kh = 0; kh < p->k_h; ++kh) {
                    const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                    if (ih < 0 || ih >= p->in_h)
                        continue;
                    for (kw = 0; kw < p->k_w; ++kw) {
                        const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                        int32_t xv;
                        if (iw < 0 || iw >= p->in_w)
                            continue;
                        xv = x[((size_t)ih * p->in_w + iw) * c + k];
                        if (xv > best) { /* strict: the first maximum wins */
                            best = xv;
                            best_t = kh * p->k_w + kw;
                        }
                    }
                }
                if (best == INT32_MIN)
                    best = q->x_zero; /* no in-range tap: real 0, as the fp32 kernel */
                v = mdy_requantize(best - q->x_zero, q->multiplier, q->shift) + q->y_zero;
                y[e] = mdy_clamp_s8(v, q->act_min, q->act_max);
                if (mask)
                    mdy_window_index_put(mask, e, b, best_t);
            }
        }
    }
}
