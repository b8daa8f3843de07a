/* Conv 2D input gradient, groups == 1: register-blocked.
 *
 * dx[ih][iw][i] collects dy[oh][ow][o] * w[o][kh][kw][i] in the reference's
 * order (the scatter loop over output positions, taps, then o), so the
 * result is bit-identical. Two blockings keep that order:
 *  - pointwise (1x1, stride 1, no padding): each input element gets exactly
 *    the terms o = 0..out_c-1 of its own position, so NP positions x 4 input
 *    channels are summed in registers (NP + 4 loads for 4*NP MACs); on the
 *    Cortex-M7 the 4 x 4 blocks over an even out_c are one inline-assembly
 *    loop over o pairs (pw_pairs below);
 *  - otherwise, per (position, tap) the terms of o = 0..out_c-1 are added to
 *    a block of up to 16 input channels held in registers instead of being loaded
 *    and stored for every o. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

/* Only optimized, speed-first builds: the loops hold nearly every integer
 * register, which -O0 and -Os builds cannot give them (they take the C). */
#if defined(__GNUC__) && defined(__thumb2__) && defined(__ARM_FP) && (__ARM_FP & 4) && \
    defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
#define MDY_IGRAD_VLDM 1
#endif

#ifdef MDY_IGRAD_VLDM
/* A pointwise block of 4 positions x 4 input channels over n >= 1 pairs of
 * output channels, whole (5 positions would need one integer register more
 * than the loop has): the sums start from dx (accumulate) or from zeros[],
 * one VLDM per position, and go to dx with one VSTM per position. Per pair o, o+1: the two
 * weight rows' 4 values (s0..s3, s4..s7) and per position its dy[o], dy[o+1]
 * with one VLDM (s8, s9); each sum takes the o term, then the o+1 term, one
 * VFMA each: the reference's order, rounded as fmaf. */
#define MDY_POS4(a0, a1, a2, a3) \
    "vfma.f32 " a0 ", s8, s0\n\t" "vfma.f32 " a1 ", s8, s1\n\t" \
    "vfma.f32 " a2 ", s8, s2\n\t" "vfma.f32 " a3 ", s8, s3\n\t" \
    "vfma.f32 " a0 ", s9, s4\n\t" "vfma.f32 " a1 ", s9, s5\n\t" \
    "vfma.f32 " a2 ", s9, s6\n\t" "vfma.f32 " a3 ", s9, s7\n\t"
#define MDY_PAIR_HEAD                                                          \
    "1:\n\t"                                                                 \
    "vldmia %[w], {s0-s3}\n\t" "add %[w], %[w], %[ws]\n\t"                  \
    "vldmia %[w], {s4-s7}\n\t" "add %[w], %[w], %[ws]\n\t"                  \
    "vldmia %[d0]!, {s8, s9}\n\t" MDY_POS4("s10", "s11", "s12", "s13")       \
    "vldmia %[d1]!, {s8, s9}\n\t" MDY_POS4("s14", "s15", "s16", "s17")       \
    "vldmia %[d2]!, {s8, s9}\n\t" MDY_POS4("s18", "s19", "s20", "s21")       \
    "vldmia %[d3]!, {s8, s9}\n\t" MDY_POS4("s22", "s23", "s24", "s25")
#define MDY_PAIR_NEXT "subs %[n], %[n], #1\n\t" "bne 1b\n\t"
MDY_AI void pw_pairs(const float *const dyp[4], const float *w, size_t w_stride,
                     int32_t n, const float *init, size_t init_stride, float *dx, size_t dx_stride)
{
    static const float zeros[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const float *d0 = dyp[0], *d1 = dyp[1], *d2 = dyp[2], *d3 = dyp[3];
    const size_t ws = w_stride * sizeof(float);
    /* the stores' pointer and stride reach the end through memory (into
     * registers the loop is done with): the loop holds all others */
    const uintptr_t out[2] = {(uintptr_t)dx, dx_stride * sizeof(float)};
    const float *in = init ? init : zeros;
    size_t is = init ? init_stride * sizeof(float) : 0;
    __asm__ volatile(
        "vldmia %[in], {s10-s13}\n\t" "add %[in], %[in], %[is]\n\t"
        "vldmia %[in], {s14-s17}\n\t" "add %[in], %[in], %[is]\n\t"
        "vldmia %[in], {s18-s21}\n\t" "add %[in], %[in], %[is]\n\t"
        "vldmia %[in], {s22-s25}\n\t"
        MDY_PAIR_HEAD
        MDY_PAIR_NEXT
        "ldr %[in], [%[o]]\n\t" "ldr %[is], [%[o], #4]\n\t"
        "vstmia %[in], {s10-s13}\n\t" "add %[in], %[in], %[is]\n\t"
        "vstmia %[in], {s14-s17}\n\t" "add %[in], %[in], %[is]\n\t"
        "vstmia %[in], {s18-s21}\n\t" "add %[in], %[in], %[is]\n\t"
        "vstmia %[in], {s22-s25}\n\t"
        : [d0] "+r"(d0), [d1] "+r"(d1), [d2] "+r"(d2), [d3] "+r"(d3),
          [w] "+r"(w), [n] "+r"(n), [in] "+r"(in), [is] "+r"(is)
        : [ws] "r"(ws), [o] "r"(out)
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12",
          "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23",
          "s24", "s25", "cc", "memory");
}
#undef MDY_POS4
#undef MDY_PAIR_HEAD
#undef MDY_PAIR_NEXT
#endif

/* Pointwise: NP positions x NI input channels at dx0; dy rows out_c apart,
 * w[o][i] rows in_c apart. */
MDY_AI void pw_block(const int NP, const int NI, int32_t in_c, int32_t out_c,
                     const float *w0, const float *dy0, float *dx0, int accumulate)
{
    float acc[4][4];
    const float *dyp[4];
    const float *wp = w0;
    int32_t o;
    int j, q;

#ifdef MDY_IGRAD_VLDM
    if (NP == 4 && NI == 4 && out_c >= 2 && !(out_c & 1)) {
MDY_UNROLL(4)
        for (j = 0; j < 4; ++j)
            dyp[j] = dy0 + (size_t)j * out_c;
        pw_pairs(dyp, w0, (size_t)in_c, out_c / 2, accumulate ? dx0 : NULL,
                 (size_t)in_c, dx0, (size_t)in_c);
        return;
    }
#endif
MDY_UNROLL(4)
    for (j = 0; j < NP; ++j) {
        dyp[j] = dy0 + (size_t)j * out_c;
MDY_UNROLL(4)
        for (q = 0; q < NI; ++q)
            acc[j][q] = accumulate ? dx0[(size_t)j * in_c + q] : 0.0f;
    }
    for (o = 0; o < out_c; ++o) {
        float wv[4];
MDY_UNROLL(4)
        for (q = 0; q < NI; ++q)
            wv[q] = wp[q];
        wp += in_c;
MDY_UNROLL(4)
        for (j = 0; j < NP; ++j) {
            const float g = dyp[j][o];
MDY_UNROLL(4)
            for (q = 0; q < NI; ++q)
                acc[j][q] = fmaf(g, wv[q], acc[j][q]);
        }
    }
MDY_UNROLL(4)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NI; ++q)
            dx0[(size_t)j * in_c + q] = acc[j][q];
}

MDY_AI void pw_positions(const int NP, int32_t in_c, int32_t out_c, const float *w,
                         const float *dy0, float *dx0, int accumulate)
{
    int32_t i;
    for (i = 0; i + 4 <= in_c; i += 4)
        pw_block(NP, 4, in_c, out_c, w + i, dy0, dx0 + i, accumulate);
    for (; i < in_c; ++i)
        pw_block(NP, 1, in_c, out_c, w + i, dy0, dx0 + i, accumulate);
}

static MDY_NOINLINE void pointwise(int32_t n, int32_t in_c, int32_t out_c, const float *w,
                      const float *dy, float *dx, int accumulate)
{
    for (; n >= 4; n -= 4, dy += 4 * out_c, dx += 4 * in_c)
        pw_positions(4, in_c, out_c, w, dy, dx, accumulate);
    if (n >= 2) {
        pw_positions(2, in_c, out_c, w, dy, dx, accumulate);
        n -= 2, dy += 2 * out_c, dx += 2 * in_c;
    }
    if (n == 1)
        pw_positions(1, in_c, out_c, w, dy, dx, accumulate);
}

/* dxp[0..NI) += sum over o of dyp[o] * w_o[0..NI), w_o rows ws apart. */
MDY_AI void tap_block(const int NI, int32_t out_c, const float *dyp, const float *wp,
                      size_t ws, float *dxp)
{
    float acc[16];
    int32_t o;
    int q;
MDY_UNROLL(16)
    for (q = 0; q < NI; ++q)
        acc[q] = dxp[q];
    for (o = 0; o < out_c; ++o) {
        const float g = dyp[o];
MDY_UNROLL(16)
        for (q = 0; q < NI; ++q)
            acc[q] = fmaf(g, wp[q], acc[q]);
        wp += ws;
    }
MDY_UNROLL(16)
    for (q = 0; q < NI; ++q)
        dxp[q] = acc[q];
}

void mdy_conv2d_nhwc_f32_igrad(const mdy_conv_params *p, const float *w,
                               const float *dy, float *dx, int accumulate)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const size_t ws = (size_t)p->k_h * p->k_w * in_c;
    int32_t oh, ow, kh, kw, i;

    if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
        p->pad_top == 0 && p->pad_left == 0 && p->out_h == p->in_h && p->out_w == p->in_w) {
        pointwise(p->in_h * p->in_w, in_c, out_c, w, dy, dx, accumulate);
        return;
    }
    if (!accumulate) {
        const int32_t n = p->in_h * p->in_w * in_c;
        for (i = 0; i < n; ++i)
            dx[i] = 0.0f;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        for (ow = 0; ow < p->out_w; ++ow) {
            const float *dyp = dy + ((size_t)oh * p->out_w + ow) * out_c;
            for (kh = 0; kh < p->k_h; ++kh) {
                const int32_t ih = oh * p->stride_h + kh - p->pad_top;
                if (ih < 0 || ih >= p->in_h)
                    continue;
                for (kw = 0; kw < p->k_w; ++kw) {
                    const int32_t iw = ow * p->stride_w + kw - p->pad_left;
                    const float *wt = w + ((size_t)kh * p->k_w + kw) * in_c;
                    float *dxp;
                    if (iw < 0 || iw >= p->in_w)
                        continue;
                    dxp = dx + ((size_t)ih * p->in_w + iw) * in_c;
                    for (i = 0; i + 16 <= in_c; i += 16)
                        tap_block(16, out_c, dyp, wt + i, ws, dxp + i);
                    if (i + 8 <= in_c) {
                        tap_block(8, out_c, dyp, wt + i, ws, dxp + i);
                        i += 8;
                    }
                    if (i + 4 <= in_c) {
                        tap_block(4, out_c, dyp, wt + i, ws, dxp + i);
                        i += 4;
                    }
                    for (; i < in_c; ++i)
                        tap_block(1, out_c, dyp, wt + i, ws, dxp + i);
                }
            }
        }
    }
}
