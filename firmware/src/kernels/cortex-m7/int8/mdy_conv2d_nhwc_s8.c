/* Conv 2D forward, int8, NHWC, groups == 1 (pointwise and general), Cortex-M7:
 * the reference's accumulators (bias + sum (x - x_zero) w over in-range taps)
 * with two MACs per SMLAD, bit-identical to ../../reference/int8/.
 *
 * No im2col and no scratch: in NHWC the in-range taps of one kernel row of an
 * output position are contiguous in x (kw0..kw1-1, all channels), and so are
 * their weights in OHWI, so each kernel row is one dot product of length
 * (kw1 - kw0) * in_c, widened from int8 on the fly. A block of 2 output
 * positions (adjacent in the row, with the same in-range taps: the row's
 * interior) times 4 output channels shares each widened word: per 4 input
 * values, 2 x words and 4 weight words feed 16 SMLADs (32 MACs). Border
 * positions, and the channels past a multiple of 4, run in smaller blocks of
 * the same code. A pointwise conv is the case of one row of length in_c. */
#include "medyate.h"
#include "mdy_s8_dsp.h"

MDY_S8_NO_PRESCHEDULE

/* Blocks of up to MDY_S8_NP positions x MDY_S8_NC channels (mdy_s8_dsp.h). */
#define NP_MAX MDY_S8_NP
#define NC_MAX MDY_S8_NC

/* What a block needs of the layer, read once per call: an int8 store may
 * alias any field of the parameter structs, so the compiler would reload
 * them in every block. */
typedef struct {
    const int8_t *x, *w;
    const int32_t *bias, *multiplier, *shift;
    int32_t in_c, k_w, out_c, x_zero;
    ptrdiff_t x_row;   /* in_w * in_c */
    size_t w_oc;       /* k_h * k_w * in_c: weights per output channel */
    mdy_s8_out out;
} layer;

/* Outputs o..o+nc-1 of the np positions whose kernel rows kh0..kh1-1 and
 * columns kw0..kw1-1 are in range; xoff[p]: the offset in x of (the row of
 * kh = 0, the column of kw0) of position p, which may lie before x: a pointer
 * is formed only for in-range rows. */
MDY_AI void channels_block(const int np, const int nc, const layer *L, const ptrdiff_t *xoff,
                           int8_t *const *yp, int32_t o, int32_t kh0, int32_t kh1,
                           int32_t kw0, int32_t len)
{
    int32_t acc[NP_MAX][NC_MAX];
    const int8_t *xs[NP_MAX], *ws[NC_MAX];
    int32_t kh;
    int p, j;
    MDY_UNROLL(2)
    for (j = 0; j < nc; ++j) {
        MDY_UNROLL(2)
        for (p = 0; p < np; ++p)
            acc[p][j] = L->bias ? L->bias[o + j] : 0;
    }
    for (kh = kh0; kh < kh1; ++kh) {
        MDY_UNROLL(2)
        for (p = 0; p < np; ++p)
            xs[p] = L->x + (xoff[p] + (ptrdiff_t)kh * L->x_row);
        MDY_UNROLL(2)
        for (j = 0; j < nc; ++j)
            ws[j] = L->w + (size_t)(o + j) * L->w_oc + ((size_t)kh * L->k_w + kw0) * L->in_c;
        s8_dot_block(np, nc, len, xs, ws, L->x_zero, acc);
    }
    MDY_UNROLL(2)
    for (j = 0; j < nc; ++j) {
        const mdy_s8_requant r = mdy_s8_requant_channel(L->multiplier[o + j], L->shift[o + j]);
        MDY_UNROLL(2)
        for (p = 0; p < np; ++p)
            yp[p][o + j] = mdy_s8_output(L->out, r, acc[p][j]);
    }
}

/* Every output channel of np positions sharing their in-range taps. */
MDY_AI void positions_block(const int np, const layer *L, const ptrdiff_t *xoff,
                            int8_t *const *yp, int32_t kh0, int32_t kh1, int32_t kw0,
                            int32_t kw1)
{
    const int32_t len = (kw1 - kw0) * L->in_c;
    int32_t o = 0;
    if (kh0 >= kh1 || kw0 >= kw1)
        kh1 = kh0; /* a window entirely in the padding: bias alone */
    for (; o + NC_MAX <= L->out_c; o += NC_MAX)
        channels_block(np, NC_MAX, L, xoff, yp, o, kh0, kh1, kw0, len);
    for (; o < L->out_c; ++o)
        channels_block(np, 1, L, xoff, yp, o, kh0, kh1, kw0, len);
}

MDY_NOINLINE static void positions_2(const layer *L, const ptrdiff_t *xoff, int8_t *const *yp,
                                     int32_t kh0, int32_t kh1, int32_t kw0, int32_t kw1)
{
    positions_block(2, L, xoff, yp, kh0, kh1, kw0, kw1);
}

MDY_NOINLINE static void positions_1(const layer *L, const ptrdiff_t *xoff, int8_t *const *yp,
                                     int32_t kh0, int32_t kh1, int32_t kw0, int32_t kw1)
{
    positions_block(1, L, xoff, yp, kh0, kh1, kw0, kw1);
}

/* In-range kernel columns [*k0, *k1) of the window starting at input column i0. */
static void tap_range(int32_t i0, int32_t k, int32_t in, int32_t *k0, int32_t *k1)
{
    *k0 = i0 < 0 ? -i0 : 0;
    *k1 = in - i0 < k ? in - i0 : k;
}

/* Pointwise with every tap in range (a 1x1 kernel without padding, any
 * stride): a matrix product, output channels in pairs in the outer loop (their
 * bias and requantization set up once), positions in pairs along each output
 * row inside, 2 x 2 outputs per dot block. `common`: both channels requantize
 * in the common case, so no output checks; `full` (with common): the clamp is
 * the whole int8 range. */
MDY_AI void pointwise_channels(const int nc, const int common, const int full, const layer *L,
                               int32_t o,
                               int32_t out_h, int32_t out_w, int32_t stride_h,
                               int32_t stride_w, int8_t *y)
{
    const int32_t in_c = L->in_c, out_c = L->out_c, x_zero = L->x_zero;
    const ptrdiff_t x_step = (ptrdiff_t)stride_w * in_c, x_rows = (ptrdiff_t)stride_h * L->x_row;
    const mdy_s8_out out = L->out;
    const int8_t *ws[NC_MAX];
    mdy_s8_requant r[NC_MAX];
    int32_t b[NC_MAX];
    int32_t oh, ow;
    int j;
    MDY_UNROLL(2)
    for (j = 0; j < nc; ++j) {
        ws[j] = L->w + (size_t)(o + j) * in_c;
        r[j] = mdy_s8_requant_channel(L->multiplier[o + j], L->shift[o + j]);
        b[j] = L->bias ? L->bias[o + j] : 0;
    }
    for (oh = 0; oh < out_h; ++oh) {
        const int8_t *xs[NP_MAX];
        int8_t *yp = y + (size_t)oh * out_w * out_c + o;
        xs[0] = L->x + oh * x_rows;
        for (ow = 0; ow < out_w; ow += 2) {
            int32_t acc[NP_MAX][NC_MAX];
            MDY_UNROLL(2)
            for (j = 0; j < nc; ++j)
                acc[0][j] = acc[1][j] = b[j];
            if (ow + 1 < out_w) {
                xs[1] = xs[0] + x_step;
                s8_dot_block(2, nc, in_c, xs, ws, x_zero, acc);
                MDY_UNROLL(2)
                for (j = 0; j < nc; ++j) {
                    yp[j] = common ? mdy_s8_output_k(full, out, r[j], acc[0][j])
                                   : mdy_s8_output(out, r[j], acc[0][j]);
                    yp[out_c + j] = common ? mdy_s8_output_k(full, out, r[j], acc[1][j])
                                           : mdy_s8_output(out, r[j], acc[1][j]);
                }
                xs[0] = xs[1] + x_step;
                yp += 2 * (size_t)out_c;
            } else {
                s8_dot_block(1, nc, in_c, xs, ws, x_zero, acc);
                MDY_UNROLL(2)
                for (j = 0; j < nc; ++j)
                    yp[j] = common ? mdy_s8_output_k(full, out, r[j], acc[0][j])
                                   : mdy_s8_output(out, r[j], acc[0][j]);
            }
        }
    }
}

MDY_NOINLINE static void pointwise_2_common(const layer *L, int32_t o, int32_t out_h,
                                            int32_t out_w, int32_t stride_h, int32_t stride_w,
                                            int8_t *y)
{
    pointwise_channels(2, 1, 0, L, o, out_h, out_w, stride_h, stride_w, y);
}

MDY_NOINLINE static void pointwise_2_common_full(const layer *L, int32_t o, int32_t out_h,
                                                 int32_t out_w, int32_t stride_h,
                                                 int32_t stride_w, int8_t *y)
{
    pointwise_channels(2, 1, 1, L, o, out_h, out_w, stride_h, stride_w, y);
}

MDY_NOINLINE static void pointwise_any(const layer *L, int32_t o, int32_t out_h, int32_t out_w,
                                       int32_t stride_h, int32_t stride_w, int8_t *y)
{
    pointwise_channels(1, 0, 0, L, o, out_h, out_w, stride_h, stride_w, y);
}

static void pointwise(const layer *L, int32_t out_h, int32_t out_w, int32_t stride_h,
                      int32_t stride_w, int8_t *y)
{
    int32_t o = 0;
    for (; o + 2 <= L->out_c; o += 2) {
        if (mdy_s8_requant_channel(L->multiplier[o], L->shift[o]).general ||
            mdy_s8_requant_channel(L->multiplier[o + 1], L->shift[o + 1]).general) {
            pointwise_any(L, o, out_h, out_w, stride_h, stride_w, y);
            pointwise_any(L, o + 1, out_h, out_w, stride_h, stride_w, y);
        } else if (mdy_s8_out_full(L->out)) {
            pointwise_2_common_full(L, o, out_h, out_w, stride_h, stride_w, y);
        } else {
            pointwise_2_common(L, o, out_h, out_w, stride_h, stride_w, y);
        }
    }
    if (o < L->out_c)
        pointwise_any(L, o, out_h, out_w, stride_h, stride_w, y);
}

void mdy_conv2d_nhwc_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                        const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y)
{
    const int32_t in_c = p->in_c, out_c = p->out_c, out_w = p->out_w;
    const int32_t k_h = p->k_h, k_w = p->k_w, in_h = p->in_h, in_w = p->in_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w;
    const int32_t pad_top = p->pad_top, pad_left = p->pad_left, out_h = p->out_h;
    layer L;
    int32_t oh, ow;

    L.x = x;
    L.w = w;
    L.bias = bias;
    L.multiplier = q->multiplier;
    L.shift = q->shift;
    L.in_c = in_c;
    L.k_w = k_w;
    L.out_c = out_c;
    L.x_zero = q->x_zero;
    L.x_row = (ptrdiff_t)in_w * in_c;
    L.w_oc = (size_t)k_h * k_w * in_c;
    L.out = mdy_s8_out_of(q);
    if (k_h == 1 && k_w == 1 && pad_top == 0 && pad_left == 0 &&
        (out_h - 1) * stride_h < in_h && (out_w - 1) * stride_w < in_w) {
        pointwise(&L, out_h, out_w, stride_h, stride_w, y);
        return;
    }
    for (oh = 0; oh < out_h; ++oh) {
        const int32_t ih0 = oh * stride_h - pad_top;
        int32_t kh0, kh1;
        tap_range(ih0, k_h, in_h, &kh0, &kh1);
        for (ow = 0; ow < out_w;) {
            const int32_t iw0 = ow * stride_w - pad_left;
            ptrdiff_t xoff[NP_MAX];
            int8_t *yp[NP_MAX];
            int32_t kw0, kw1, kw0b = 0, kw1b = 0;
            tap_range(iw0, k_w, in_w, &kw0, &kw1);
            if (ow + 1 < out_w)
                tap_range(iw0 + stride_w, k_w, in_w, &kw0b, &kw1b);
            xoff[0] = ((ptrdiff_t)ih0 * in_w + iw0 + kw0) * in_c;
            yp[0] = y + ((size_t)oh * out_w + ow) * out_c;
            if (ow + 1 < out_w && kw0b == kw0 && kw1b == kw1) {
                xoff[1] = xoff[0] + (ptrdiff_t)stride_w * in_c;
                yp[1] = yp[0] + out_c;
                positions_2(&L, xoff, yp, kh0, kh1, kw0, kw1);
                ow += 2;
            } else {
                positions_1(&L, xoff, yp, kh0, kh1, kw0, kw1);
                ow += 1;
            }
        }
    }
}

int32_t mdy_conv2d_nhwc_s8_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* widened on the fly: no scratch, as the reference */
    return 0;
}
