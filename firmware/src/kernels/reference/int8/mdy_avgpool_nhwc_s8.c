/* Average pool, int8, NHWC. Per output pixel the window's int32 sums of
 * (x - x_zero) gather in scratch, one contiguous row of c codes per tap (NHWC
 * reads in order), then mdy_requantize_mean divides by the window's count and
 * rescales with one rounding. Padded taps are real 0: they add nothing and
 * count only with count_include_pad (ONNX semantics). */
#include "medyate.h"
#include "mdy_requantize.h"

int32_t mdy_avgpool_nhwc_s8_get_buffer_size(const mdy_pool_params *p)
{
    return p->c * (int32_t)sizeof(int32_t);
}

void mdy_avgpool_nhwc_s8(const mdy_pool_params *p, const mdy_s8_rescale *q,
                         const int8_t *x, int8_t *y, int32_t *scratch)
{
    const int32_t c = p->c;
    int32_t oh, ow, kh, kw, k;

    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            int8_t *yp = y + ((size_t)oh * p->out_w + ow) * c;
            int32_t count = 0;
            for (k = 0; k < c; ++k)
                scratch[k] = 0;
            for (kh = 0; kh < p->k_h; ++kh) {
                const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                if (ih < 0 || ih >= p->in_h)
                    continue;
                for (kw = 0; kw < p->k_w; ++kw) {
                    const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                    const int8_t *xp;
                    if (iw < 0 || iw >= p->in_w)
                        continue;
                    xp = x + ((size_t)ih * p->in_w + iw) * c;
                    for (k = 0; k < c; ++k)
                        scratch[k] += (int32_t)xp[k] - q->x_zero;
                    ++count;
                }
            }
            if (p->count_include_pad)
                count = p->k_h * p->k_w;
            if (count == 0)
                count = 1; /* a window without in-range taps averages to real 0 */
            for (k = 0; k < c; ++k) {
                const int32_t v = mdy_requantize_mean(scratch[k], count, q->multiplier,
                                                      q->shift) + q->y_zero;
                yp[k] = mdy_clamp_s8(v, q->act_min, q->act_max);
            }
        }
    }
}
