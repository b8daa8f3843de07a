/* Depthwise conv 2D forward, int8, NHWC, Cortex-M7: the reference's
 * accumulators (bias + sum over in-range taps of (x - x_zero) w), bit-identical
 * to ../../reference/int8/.
 *
 * Channel multiplier 1, the MobileNet case: 4 channels at a time. One word
 * of x holds the 4 channels of a tap; SXTAB16 widens it, with the zero point
 * subtracted, into the lanes (c, c+2) and (c+1, c+3). The weights
 * [out_c][k_h][k_w] are channel-major, so the group's weights are packed once
 * into the same lane pairs, tap by tap, in a small array on the stack (at most
 * MAX_TAPS taps: 8 bytes each); per tap and output position that is one LDR
 * of x, three widening instructions, two LDR of packed weights and four
 * 16 x 16 MACs (SMLABB / SMLATT, one lane each). Leftover channels, larger
 * kernels and multipliers above 1 run the reference loops. No scratch. */
#include "medyate.h"
#include "mdy_s8_dsp.h"

MDY_S8_NO_PRESCHEDULE

#define MAX_TAPS 25 /* up to 5x5 */

/* The reference loops for output channels [o0, o1). */
static void channels_plain(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                           const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y,
                           int32_t o0, int32_t o1)
{
    const int32_t in_c = p->in_c, out_c = p->out_c, m = out_c / in_c, x_zero = q->x_zero;
    const mdy_s8_out out = mdy_s8_out_of(q);
    int32_t oh, ow, o, kh, kw;
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            int8_t *yp = y + ((size_t)oh * p->out_w + ow) * out_c;
            for (o = o0; o < o1; ++o) {
                const int32_t c = o / m;
                int32_t acc = bias ? bias[o] : 0;
                for (kh = 0; kh < p->k_h; ++kh) {
                    const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                    if (ih < 0 || ih >= p->in_h)
                        continue;
                    for (kw = 0; kw < p->k_w; ++kw) {
                        const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                        if (iw < 0 || iw >= p->in_w)
                            continue;
                        acc += ((int32_t)x[((size_t)ih * p->in_w + iw) * in_c + c] - x_zero)
                               * (int32_t)w[((size_t)o * p->k_h + kh) * p->k_w + kw];
                    }
                }
                yp[o] = mdy_s8_output(out, mdy_s8_requant_channel(q->multiplier[o], q->shift[o]),
                                      acc);
            }
        }
    }
}

/* What the blocks of a 4-channel group need, read once (an int8 store may
 * alias any field of the parameter structs). */
typedef struct {
    const int8_t *x;                /* x + c */
    const mdy_s16x2 *wk;            /* [taps][2] packed weights */
    int32_t in_c, k_w, acc0[4];
    ptrdiff_t x_row;                /* in_w * in_c */
    mdy_s16x2 off;                  /* (-x_zero, -x_zero) */
    mdy_s8_requant r[4];
    mdy_s8_out out;
} group;

/* np adjacent output positions with the same in-range taps: rows kh0..kh1-1,
 * columns kw0..kw1-1; xoff[p] the offset in x of the window's (kh = 0, kw = 0)
 * tap of position p (formed into a pointer for in-range taps only). */
MDY_AI void group_block(const int np, const int k3, const group *G, const ptrdiff_t *xoff,
                        int8_t *const *yp, int32_t kh0, int32_t kh1, int32_t kw0, int32_t kw1)
{
    int32_t a[2][4];
    int32_t kh, kw;
    int p, j;
    if (k3) { /* a 3x3 window inside the map: constant bounds, unrolled */
        kh0 = kw0 = 0;
        kh1 = kw1 = 3;
    }
    MDY_UNROLL(2)
    for (p = 0; p < np; ++p) {
        MDY_UNROLL(4)
        for (j = 0; j < 4; ++j)
            a[p][j] = G->acc0[j];
    }
    MDY_UNROLL(3)
    for (kh = kh0; kh < kh1; ++kh) {
        const mdy_s16x2 *wr = G->wk + 2 * (kh * G->k_w);
        const int8_t *xr[2];
        MDY_UNROLL(2)
        for (p = 0; p < np; ++p)
            xr[p] = G->x + (xoff[p] + (ptrdiff_t)kh * G->x_row + (ptrdiff_t)kw0 * G->in_c);
        MDY_UNROLL(3)
        for (kw = kw0; kw < kw1; ++kw) {
            const mdy_s16x2 we = wr[2 * kw], wo = wr[2 * kw + 1];
            MDY_UNROLL(2)
            for (p = 0; p < np; ++p) {
                const uint32_t v = mdy_read_s8x4(xr[p]);
                const mdy_s16x2 xe = mdy_sxtab16(G->off, v);
                const mdy_s16x2 xo = mdy_sxtab16_ror8(G->off, v);
                a[p][0] = mdy_smlabb(xe, we, a[p][0]);
                a[p][2] = mdy_smlatt(xe, we, a[p][2]);
                a[p][1] = mdy_smlabb(xo, wo, a[p][1]);
                a[p][3] = mdy_smlatt(xo, wo, a[p][3]);
                xr[p] += G->in_c;
            }
        }
    }
    MDY_UNROLL(2)
    for (p = 0; p < np; ++p) {
        MDY_UNROLL(4)
        for (j = 0; j < 4; ++j)
            yp[p][j] = mdy_s8_output_common(G->out, G->r[j], a[p][j]);
    }
}

MDY_NOINLINE static void group_1(const group *G, const ptrdiff_t *xoff, int8_t *const *yp,
                                 int32_t kh0, int32_t kh1, int32_t kw0, int32_t kw1)
{
    group_block(1, 0, G, xoff, yp, kh0, kh1, kw0, kw1);
}

MDY_NOINLINE static void group_1_3x3(const group *G, const ptrdiff_t *xoff, int8_t *const *yp)
{
    group_block(1, 1, G, xoff, yp, 0, 3, 0, 3);
}

static void tap_range(int32_t i0, int32_t k, int32_t in, int32_t *k0, int32_t *k1)
{
    *k0 = i0 < 0 ? -i0 : 0;
    *k1 = in - i0 < k ? in - i0 : k;
}

/* Channels c..c+3 (multiplier 1, k_h * k_w <= MAX_TAPS). */
static void channels_4(const mdy_conv_params *p, const mdy_s8_conv_quant *q, const int8_t *x,
                       const int8_t *w, const int32_t *bias, int8_t *y, int32_t c)
{
    const int32_t in_c = p->in_c, out_c = p->out_c, taps = p->k_h * p->k_w;
    const int32_t k_h = p->k_h, k_w = p->k_w, in_h = p->in_h, in_w = p->in_w;
    const int32_t out_h = p->out_h, out_w = p->out_w, stride_h = p->stride_h;
    const int32_t stride_w = p->stride_w, pad_top = p->pad_top, pad_left = p->pad_left;
    mdy_s16x2 wk[MAX_TAPS][2]; /* (w[c][t], w[c+2][t]), (w[c+1][t], w[c+3][t]) */
    group G;
    int32_t t, j, oh, ow;
    for (t = 0; t < taps; ++t) {
        wk[t][0] = mdy_pack16(w[(size_t)c * taps + t], w[(size_t)(c + 2) * taps + t]);
        wk[t][1] = mdy_pack16(w[(size_t)(c + 1) * taps + t], w[(size_t)(c + 3) * taps + t]);
    }
    G.x = x + c;
    G.wk = wk[0];
    G.in_c = in_c;
    G.k_w = k_w;
    G.x_row = (ptrdiff_t)in_w * in_c;
    G.off = mdy_s16x2_dup(-q->x_zero);
    G.out = mdy_s8_out_of(q);
    for (j = 0; j < 4; ++j) {
        G.acc0[j] = bias ? bias[c + j] : 0;
        G.r[j] = mdy_s8_requant_channel(q->multiplier[c + j], q->shift[c + j]);
    }
    for (oh = 0; oh < out_h; ++oh) {
        const int32_t ih0 = oh * stride_h - pad_top;
        int32_t kh0, kh1;
        tap_range(ih0, k_h, in_h, &kh0, &kh1);
        for (ow = 0; ow < out_w; ++ow) {
            const int32_t iw0 = ow * stride_w - pad_left;
            const ptrdiff_t xoff = ((ptrdiff_t)ih0 * in_w + iw0) * in_c;
            int8_t *const yp = y + ((size_t)oh * out_w + ow) * out_c + c;
            int32_t kw0, kw1;
            tap_range(iw0, k_w, in_w, &kw0, &kw1);
            if (k_h == 3 && k_w == 3 && kh0 == 0 && kh1 == 3 && kw0 == 0 && kw1 == 3)
                group_1_3x3(&G, &xoff, &yp);
            else
                group_1(&G, &xoff, &yp, kh0, kh1, kw0, kw1);
        }
    }
}

/* Whether channels c..c+3 all requantize in the common case (mdy_s8_dsp.h). */
static int common_requant_4(const mdy_s8_conv_quant *q, int32_t c)
{
    int32_t j;
    for (j = 0; j < 4; ++j)
        if (mdy_s8_requant_channel(q->multiplier[c + j], q->shift[c + j]).general)
            return 0;
    return 1;
}

void mdy_depthwise_conv2d_nhwc_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                                  const int8_t *x, const int8_t *w, const int32_t *bias,
                                  int8_t *y)
{
    int32_t c = 0;
    if (p->out_c == p->in_c && p->k_h * p->k_w <= MAX_TAPS) {
        for (; c + 4 <= p->in_c; c += 4) {
            if (common_requant_4(q, c))
                channels_4(p, q, x, w, bias, y, c);
            else
                channels_plain(p, q, x, w, bias, y, c, c + 4);
        }
    }
    if (c < p->out_c)
        channels_plain(p, q, x, w, bias, y, c, p->out_c);
}

int32_t mdy_depthwise_conv2d_nhwc_s8_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* the packed weights live on the stack (MAX_TAPS * 8 bytes): no scratch */
    return 0;
}
