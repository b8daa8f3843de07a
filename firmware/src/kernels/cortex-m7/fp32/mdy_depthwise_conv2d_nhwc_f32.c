/* Depthwise conv 2D forward, NHWC: register-blocked.
 *
 * Channel multiplier 1 (the common case): blocks of NP output positions of
 * one row x 4 channels keep NP*4 sums in registers; per tap the 4 weights
 * are loaded once for the NP positions, and the inputs of 4 neighbouring
 * channels are adjacent (one base pointer per position). Positions of a
 * block see the same valid taps (the row's interior, or one border position
 * alone), so no tap is bounds-checked inside a block and no output needs
 * the per-output division of the reference. Every output sums bias, then the
 * taps in (kh, kw) order with one fmaf each, exactly as the reference: the
 * result is bit-identical. Multipliers > 1 take the reference's loops. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

/* NP positions (xs floats apart) x NC channels; x0 and w0 at the first valid
 * tap of the first position / channel, nkh x nkw valid taps. */
MDY_AI void dw_block(const int NP, const int NC, const mdy_conv_params *p,
                     const float *x0, size_t xs, const float *w0, int32_t nkh, int32_t nkw,
                     const float *bias, float *y0)
{
    const int32_t c = p->in_c;
    const size_t kk = (size_t)p->k_h * p->k_w;
    float acc[4][4];
    int32_t kh, kw;
    int j, q;

MDY_UNROLL(4)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q)
            acc[j][q] = bias ? bias[q] : 0.0f;
    for (kh = 0; kh < nkh; ++kh) {
        /* one pointer per position and per channel: every load below is an
         * immediate offset from one of them */
        const float *xp[4], *wp[4];
MDY_UNROLL(4)
        for (j = 0; j < NP; ++j)
            xp[j] = x0 + (size_t)kh * p->in_w * c + j * xs;
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q)
            wp[q] = w0 + (size_t)kh * p->k_w + q * kk;
        for (kw = 0; kw < nkw; ++kw) {
            float wv[4];
MDY_UNROLL(4)
            for (q = 0; q < NC; ++q)
                wv[q] = *wp[q]++;
MDY_UNROLL(4)
            for (j = 0; j < NP; ++j) {
MDY_UNROLL(4)
                for (q = 0; q < NC; ++q)
                    acc[j][q] = fmaf(xp[j][q], wv[q], acc[j][q]);
                xp[j] += c;
            }
        }
    }
MDY_UNROLL(4)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q)
            y0[(size_t)j * c + q] = acc[j][q];
}

MDY_AI void dw_positions(const int NP, const mdy_conv_params *p, const float *x0,
                         size_t xs, const float *w0, int32_t nkh, int32_t nkw,
                         const float *bias, float *y0)
{
    const size_t kk = (size_t)p->k_h * p->k_w;
    int32_t ch;
    for (ch = 0; ch + 4 <= p->in_c; ch += 4)
        dw_block(NP, 4, p, x0 + ch, xs, w0 + ch * kk, nkh, nkw, bias ? bias + ch : NULL, y0 + ch);
    for (; ch < p->in_c; ++ch)
        dw_block(NP, 1, p, x0 + ch, xs, w0 + ch * kk, nkh, nkw, bias ? bias + ch : NULL, y0 + ch);
}

/* Interior of a row, kernel width 3, horizontal stride S: a sliding window.
 * The NP positions of the block read (NP-1)*S + 3 input columns per kernel
 * row; each column is loaded once (NC adjacent channels) and used by every
 * output whose window covers it. Columns are visited left to right, so each
 * output still receives its taps in kw order. */
MDY_AI void dw_slide(const int NP, const int NC, const int S, const mdy_conv_params *p,
                     const float *x0, const float *w0, int32_t nkh, const float *bias,
                     float *y0)
{
    const int32_t c = p->in_c;
    const size_t kk = (size_t)p->k_h * p->k_w;
    float acc[6][4];
    int32_t kh;
    int j, q, t;

MDY_UNROLL(6)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q)
            acc[j][q] = bias ? bias[q] : 0.0f;
    for (kh = 0; kh < nkh; ++kh) {
        const float *xp = x0 + (size_t)kh * p->in_w * c;
        const float *wr = w0 + (size_t)kh * 3;
        float wv[3][4];
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q) {
            wv[0][q] = wr[q * kk];
            wv[1][q] = wr[q * kk + 1];
            wv[2][q] = wr[q * kk + 2];
        }
MDY_UNROLL(16)
        for (t = 0; t < (NP - 1) * S + 3; ++t) {
            float xv[4];
MDY_UNROLL(4)
            for (q = 0; q < NC; ++q)
                xv[q] = xp[q];
            xp += c;
MDY_UNROLL(6)
            for (j = 0; j < NP; ++j) {
                const int kw = t - j * S;
                if (kw >= 0 && kw < 3) {
MDY_UNROLL(4)
                    for (q = 0; q < NC; ++q)
                        acc[j][q] = fmaf(xv[q], wv[kw][q], acc[j][q]);
                }
            }
        }
    }
MDY_UNROLL(6)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NC; ++q)
            y0[(size_t)j * c + q] = acc[j][q];
}

/* A run of n interior positions, all channels, stride S. */
MDY_AI void dw_slide_run(const int S, const mdy_conv_params *p, const float *x0,
                         const float *w0, int32_t nkh, const float *bias, float *y0, int32_t n)
{
    const int32_t c = p->in_c;
    const size_t kk = (size_t)p->k_h * p->k_w;
    int32_t ch;
    for (; n > 0; n -= 6, x0 += 6 * S * c, y0 += 6 * c) {
        const int32_t np = n < 6 ? n : 6;
        for (ch = 0; ch + 2 <= c; ch += 2) {
            const float *xc = x0 + ch, *wc = w0 + ch * kk;
            const float *bc = bias ? bias + ch : NULL;
            float *yc = y0 + ch;
            switch (np) {
            case 6: dw_slide(6, 2, S, p, xc, wc, nkh, bc, yc); break;
            case 5: dw_slide(5, 2, S, p, xc, wc, nkh, bc, yc); break;
            case 4: dw_slide(4, 2, S, p, xc, wc, nkh, bc, yc); break;
            case 3: dw_slide(3, 2, S, p, xc, wc, nkh, bc, yc); break;
            case 2: dw_slide(2, 2, S, p, xc, wc, nkh, bc, yc); break;
            default: dw_slide(1, 2, S, p, xc, wc, nkh, bc, yc); break;
            }
        }
        if (ch < c) {
            const float *xc = x0 + ch, *wc = w0 + ch * kk;
            const float *bc = bias ? bias + ch : NULL;
            float *yc = y0 + ch;
            switch (np) {
            case 6: dw_slide(6, 1, S, p, xc, wc, nkh, bc, yc); break;
            case 5: dw_slide(5, 1, S, p, xc, wc, nkh, bc, yc); break;
            case 4: dw_slide(4, 1, S, p, xc, wc, nkh, bc, yc); break;
            case 3: dw_slide(3, 1, S, p, xc, wc, nkh, bc, yc); break;
            case 2: dw_slide(2, 1, S, p, xc, wc, nkh, bc, yc); break;
            default: dw_slide(1, 1, S, p, xc, wc, nkh, bc, yc); break;
            }
        }
    }
}

static void tap_range(int32_t o, int32_t stride, int32_t pad, int32_t k, int32_t in,
                      int32_t *k0, int32_t *k1)
{
    const int32_t start = o * stride - pad;
    *k0 = start < 0 ? -start : 0;
    *k1 = in - start < k ? in - start : k;
    if (*k1 < *k0)
        *k1 = *k0;
}

static void multiplier_one(const mdy_conv_params *p, const float *x, const float *w,
                           const float *bias, float *y)
{
    const int32_t c = p->in_c;
    const size_t xs = (size_t)p->stride_w * c;
    int32_t oh, ow;
    for (oh = 0; oh < p->out_h; ++oh) {
        const int32_t ih0 = oh * p->stride_h - p->pad_top;
        int32_t kh0, kh1;
        tap_range(oh, p->stride_h, p->pad_top, p->k_h, p->in_h, &kh0, &kh1);
        for (ow = 0; ow < p->out_w;) {
            int32_t kw0, kw1, n = 1, a, b, nkh = 0, nkw = 0; /* 0: bias only */
            const float *x0 = x, *w0 = w;
            float *y0 = y + ((size_t)oh * p->out_w + ow) * c;
            tap_range(ow, p->stride_w, p->pad_left, p->k_w, p->in_w, &kw0, &kw1);
            while (ow + n < p->out_w) {
                tap_range(ow + n, p->stride_w, p->pad_left, p->k_w, p->in_w, &a, &b);
                if (a != kw0 || b != kw1)
                    break;
                ++n;
            }
            if (kh1 > kh0 && kw1 > kw0) {
                x0 = x + ((size_t)(ih0 + kh0) * p->in_w + (ow * p->stride_w - p->pad_left + kw0)) * c;
                w0 = w + (size_t)kh0 * p->k_w + kw0;
                nkh = kh1 - kh0;
                nkw = kw1 - kw0;
            }
            ow += n;
            if (nkw == 3 && p->k_w == 3 && nkh > 0 && (p->stride_w == 1 || p->stride_w == 2)) {
                if (p->stride_w == 1)
                    dw_slide_run(1, p, x0, w0, nkh, bias, y0, n);
                else
                    dw_slide_run(2, p, x0, w0, nkh, bias, y0, n);
                continue;
            }
            for (; n >= 4; n -= 4, x0 += 4 * xs, y0 += 4 * c)
                dw_positions(4, p, x0, xs, w0, nkh, nkw, bias, y0);
            if (n >= 2) {
                dw_positions(2, p, x0, xs, w0, nkh, nkw, bias, y0);
                n -= 2, x0 += 2 * xs, y0 += 2 * c;
            }
            if (n == 1)
                dw_positions(1, p, x0, xs, w0, nkh, nkw, bias, y0);
        }
    }
}

void mdy_depthwise_conv2d_nhwc_f32(const mdy_conv_params *p, const float *x,
                                   const float *w, const float *bias, float *y)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t m = out_c / in_c;
    int32_t oh, ow, o, kh, kw;

    if (m == 1) {
        multiplier_one(p, x, w, bias, y);
        return;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            float *yp = y + ((size_t)oh * p->out_w + ow) * out_c;
            for (o = 0; o < out_c; ++o) {
                const int32_t c = o / m;
                float acc = bias ? bias[o] : 0.0f;
                for (kh = 0; kh < p->k_h; ++kh) {
                    const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                    if (ih < 0 || ih >= p->in_h)
                        continue;
                    for (kw = 0; kw < p->k_w; ++kw) {
                        const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                        if (iw < 0 || iw >= p->in_w)
                            continue;
                        acc = fmaf(x[((size_t)ih * p->in_w + iw) * in_c + c],
                                   w[((size_t)o * p->k_h + kh) * p->k_w + kw], acc);
                    }
                }
                yp[o] = acc;
            }
        }
    }
}

int32_t mdy_depthwise_conv2d_nhwc_f32_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* the blocked kernel keeps its blocks in registers */
    return 0;
}
