/* Conv 2D sparse weight gradient, groups == 1: register-blocked.
 *
 * dW[o][kh][kw][c] for selected channel c = sel[k] sums dy[oh][ow][o] *
 * x_c[ih][iw] over the output positions whose tap (kh, kw) reads inside the
 * map, in raster order, then adds the sum to the slice (as the reference
 * does, so the result is bit-identical). Blocks of NK selected channels x 4
 * output channels keep NK*4 sums in registers: per output position the 4 dy
 * values are loaded once for all NK maps, and each map value once for the 4
 * output channels (NK + 4 loads for 4*NK MACs). On the Cortex-M7 the 4 x 4
 * block's row loop at stride 1 is inline assembly over position pairs
 * (wgrad_pairs_4x4): 6 loads and 32 VFMAs per pair. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

/* Only optimized, speed-first builds: the loops hold nearly every integer
 * register, which -O0 and -Os builds cannot give them (they take the C). */
#if defined(__GNUC__) && defined(__thumb2__) && defined(__ARM_FP) && (__ARM_FP & 4) && \
    defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
#define MDY_WGRAD_VLDM 1
#endif

#ifdef MDY_WGRAD_VLDM
/* The 4 x 4 block over n >= 1 pairs of output positions of one row, stride 1.
 * The 16 sums come from acc (row-major) into s16..s31 with one VLDM and go
 * back with one VSTM. Per pair: the two positions' 4 dy values (s0..s3, then
 * s4..s7, dy_stride bytes apart) and, per map, its two values with one VLDM
 * (s8, s9: the maps are planar, so a row's values are contiguous); each sum
 * takes the first position's term, then the second's, one VFMA each: the
 * reference's raster order, rounded once per term as fmaf rounds. C cannot ask
 * for these multi-register loads; GCC loads each float alone. */
#define MDY_MAP4(a0, a1, a2, a3) \
    "vfma.f32 " a0 ", s0, s8\n\t" "vfma.f32 " a1 ", s1, s8\n\t" \
    "vfma.f32 " a2 ", s2, s8\n\t" "vfma.f32 " a3 ", s3, s8\n\t" \
    "vfma.f32 " a0 ", s4, s9\n\t" "vfma.f32 " a1 ", s5, s9\n\t" \
    "vfma.f32 " a2 ", s6, s9\n\t" "vfma.f32 " a3 ", s7, s9\n\t"
MDY_AI void wgrad_pairs_4x4(float acc[4][4], const float *xp[4], const float **dyp,
                            size_t dy_stride, int32_t n)
{
    const float *d = *dyp;
    __asm__ volatile(
        "vldmia %[acc], {s16-s31}\n\t"
        "1:\n\t"
        "vldmia %[d], {s0-s3}\n\t" "add %[d], %[d], %[ds]\n\t"
        "vldmia %[d], {s4-s7}\n\t" "add %[d], %[d], %[ds]\n\t"
        "vldmia %[x0]!, {s8, s9}\n\t" MDY_MAP4("s16", "s17", "s18", "s19")
        "vldmia %[x1]!, {s8, s9}\n\t" MDY_MAP4("s20", "s21", "s22", "s23")
        "vldmia %[x2]!, {s8, s9}\n\t" MDY_MAP4("s24", "s25", "s26", "s27")
        "vldmia %[x3]!, {s8, s9}\n\t" MDY_MAP4("s28", "s29", "s30", "s31")
        "subs %[n], %[n], #1\n\t"
        "bne 1b\n\t"
        "vstmia %[acc], {s16-s31}\n\t"
        : [x0] "+r"(xp[0]), [x1] "+r"(xp[1]), [x2] "+r"(xp[2]), [x3] "+r"(xp[3]),
          [d] "+r"(d), [n] "+r"(n)
        : [acc] "r"(&acc[0][0]), [ds] "r"(dy_stride * sizeof(float))
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s16", "s17", "s18",
          "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30",
          "s31", "cc", "memory");
    *dyp = d;
}
#undef MDY_MAP4
#endif

/* For tap (kh, kw): accumulate NK maps xm[] x NO output channels starting
 * at o over the valid output rectangle [oh0, oh1) x [ow0, ow1). */
MDY_AI void wgrad_block(const int NK, const int NO, const mdy_conv_params *p,
                        const float *const *xm, float *const *dw, int32_t o,
                        int32_t kh, int32_t kw, int32_t oh0, int32_t oh1,
                        int32_t ow0, int32_t ow1, const float *dy)
{
    const int32_t out_c = p->out_c, sw = p->stride_w;
    const size_t tap = ((size_t)o * p->k_h + kh) * p->k_w + kw;
    const size_t tap_stride = (size_t)p->k_h * p->k_w; /* between output channels */
    float acc[4][4];
    int32_t oh, ow;
    int j, q;

MDY_UNROLL(4)
    for (j = 0; j < NK; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NO; ++q)
            acc[j][q] = 0.0f;
    for (oh = oh0; oh < oh1; ++oh) {
        const int32_t ih = oh * p->stride_h + kh - p->pad_top;
        const float *dyp = dy + ((size_t)oh * p->out_w + ow0) * out_c + o;
        const float *xp[4];
        int32_t n = ow1 - ow0;
MDY_UNROLL(4)
        for (j = 0; j < NK; ++j)
            xp[j] = xm[j] + (size_t)ih * p->in_w + (ow0 * sw + kw - p->pad_left);
        ow = 0;
#ifdef MDY_WGRAD_VLDM
        if (NK == 4 && NO == 4 && sw == 1 && n >= 2) {
            wgrad_pairs_4x4(acc, xp, &dyp, (size_t)out_c, n / 2);
            ow = n & ~1;
        }
#endif
        for (; ow < n; ++ow) {
            float d[4];
MDY_UNROLL(4)
            for (q = 0; q < NO; ++q)
                d[q] = dyp[q];
MDY_UNROLL(4)
            for (j = 0; j < NK; ++j) {
                const float xv = *xp[j];
                xp[j] += sw;
MDY_UNROLL(4)
                for (q = 0; q < NO; ++q)
                    acc[j][q] = fmaf(d[q], xv, acc[j][q]);
            }
            dyp += out_c;
        }
    }
MDY_UNROLL(4)
    for (j = 0; j < NK; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NO; ++q)
            dw[j][tap + q * tap_stride] += acc[j][q];
}

/* Valid output range [o0, o1) of tap k along one axis. */
static void out_range(int32_t k, int32_t stride, int32_t pad, int32_t in, int32_t out,
                      int32_t *o0, int32_t *o1)
{
    mdy_stride_span(pad - k, in - 1 + pad - k, stride, out, o0, o1); /* o*s + k - pad in [0, in) */
}

MDY_AI void wgrad_channels(const int NK, const mdy_conv_params *p, const float *const *xm,
                           float *const *dw, const float *dy)
{
    int32_t kh, kw, o;
    for (o = 0; o < p->out_c;) {
        const int four = o + 4 <= p->out_c;
        for (kh = 0; kh < p->k_h; ++kh) {
            int32_t oh0, oh1;
            out_range(kh, p->stride_h, p->pad_top, p->in_h, p->out_h, &oh0, &oh1);
            for (kw = 0; kw < p->k_w; ++kw) {
                int32_t ow0, ow1;
                out_range(kw, p->stride_w, p->pad_left, p->in_w, p->out_w, &ow0, &ow1);
                if (four)
                    wgrad_block(NK, 4, p, xm, dw, o, kh, kw, oh0, oh1, ow0, ow1, dy);
                else
                    wgrad_block(NK, 1, p, xm, dw, o, kh, kw, oh0, oh1, ow0, ow1, dy);
            }
        }
        o += four ? 4 : 1;
    }
}

void mdy_conv2d_nhwc_f32_wgrad(const mdy_conv_params *p, const float *x_maps,
                               const uint16_t *sel, int32_t n_sel,
                               const float *dy, float *dw_slices)
{
    const size_t map_size = (size_t)p->in_h * p->in_w;
    const size_t slice_size = (size_t)p->out_c * p->k_h * p->k_w;
    const float *xm[4];
    float *dw[4];
    int32_t k;
    int n = 0, at = 0;

    /* gather up to 4 valid channels, then run them as one block */
    for (k = 0; k < n_sel; ++k) {
        if ((int32_t)sel[k] >= p->in_c)
            continue; /* never act on a channel the layer does not have */
        xm[n] = x_maps + (size_t)k * map_size;
        dw[n] = dw_slices + (size_t)k * slice_size;
        if (++n == 4) {
            wgrad_channels(4, p, xm, dw, dy);
            n = 0;
        }
    }
    if (n >= 2) {
        wgrad_channels(2, p, xm + at, dw + at, dy);
        n -= 2, at += 2;
    }
    if (n == 1)
        wgrad_channels(1, p, xm + at, dw + at, dy);
}
