/* Average pool, NHWC. count_include_pad = 1 divides by k_h*k_w (every window
 * lies inside the padded input, since the bottom/right padding follows from
 * out_h/out_w); 0 divides by the number of in-range taps (0 if there is none). */
#include "medyate.h"

void mdy_avgpool_nhwc_f32(const mdy_pool_params *p, const float *x, float *y)
{
    const int32_t c = p->c;
    int32_t oh, ow, k, kh, kw;

    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            float *yp = y + ((size_t)oh * p->out_w + ow) * c;
            int32_t count = 0;
            for (k = 0; k < c; ++k)
                yp[k] = 0.0f;
            for (kh = 0; kh < p->k_h; ++kh) {
                const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                if (ih < 0 || ih >= p->in_h)
                    continue;
                for (kw = 0; kw < p->k_w; ++kw) {
                    const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                    const float *xp;
                    if (iw < 0 || iw >= p->in_w)
                        continue;
                    xp = x + ((size_t)ih * p->in_w + iw) * c;
                    for (k = 0; k < c; ++k)
                        yp[k] += xp[k];
                    ++count;
                }
            }
            if (p->count_include_pad)
                count = p->k_h * p->k_w;
            if (count > 0) {
                const float inv = 1.0f / (float)count;
                for (k = 0; k < c; ++k)
                    yp[k] *= inv;
            }
        }
    }
}
