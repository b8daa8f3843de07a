/* Conv 2D forward, NHWC, groups == 1, weights OHWI: register-blocked.
 *
 * Each block computes NP output positions of one row x NO output channels in
 * NP*NO accumulators (5 x 4 = 20 of the FPU's 32 registers): per input channel
 * it loads NO weights once and NP inputs once, 9 loads for 20 MACs, against
 * 2 loads per MAC in the reference loops. On the Cortex-M7 the channel loop
 * of the 5 x 4 and 4 x 4 blocks is one inline-assembly loop (conv_pairs,
 * conv_pw_block below) that loads two channels per pointer with one VLDM:
 * for 5 x 4, 9 loads, 40 VFMAs and the loop's 2 instructions per channel pair. Every output still sums its terms in
 * the reference's order (bias, then taps kh, kw, then input channels, each
 * with one fmaf), so the result is bit-identical to the reference kernel:
 * the blocking is over outputs, never over the reduction.
 *
 * Positions of a block must see the same valid taps, so a row is cut into
 * runs of positions whose kernel window lies equally far inside the input
 * (the interior, and each border position alone). A 1x1 conv with stride 1
 * and no padding is one run over the whole map. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "mdy_blocking.h"

/* Only optimized, speed-first builds: the loops hold nearly every integer
 * register, which -O0 and -Os builds cannot give them (they take the C). */
#if defined(__GNUC__) && defined(__thumb2__) && defined(__ARM_FP) && (__ARM_FP & 4) && \
    defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
#define MDY_CONV_VLDM 1
#endif

#ifdef MDY_CONV_VLDM
/* The channel-pair loop of a 5 x 4 or 4 x 4 block (NP positions x 4 output
 * channels), n >= 1 pairs: per pair, one VLDM of two floats per weight row
 * (s0..s7) and per position (s8, s9), then each accumulator (s10.., row-major)
 * takes its channel c term and its channel c+1 term, one VFMA each, in that
 * order: the reference's order, and VFMA rounds once as fmaf does. From C,
 * GCC loads each float with its own VLDR and, with this many accumulators,
 * shuffles registers in the loop (161 instructions per 96 MACs); C cannot
 * ask for a multi-register load. The pointers advance past the pairs. */
#define MDY_ROW4(a0, a1, a2, a3) \
    "vfma.f32 " a0 ", s8, s0\n\t" "vfma.f32 " a1 ", s8, s2\n\t" \
    "vfma.f32 " a2 ", s8, s4\n\t" "vfma.f32 " a3 ", s8, s6\n\t" \
    "vfma.f32 " a0 ", s9, s1\n\t" "vfma.f32 " a1 ", s9, s3\n\t" \
    "vfma.f32 " a2 ", s9, s5\n\t" "vfma.f32 " a3 ", s9, s7\n\t"
#define MDY_PAIRS4                                                            \
    "1:\n\t"                                                                \
    "vldmia %[w0]!, {s0, s1}\n\t" "vldmia %[w1]!, {s2, s3}\n\t"            \
    "vldmia %[w2]!, {s4, s5}\n\t" "vldmia %[w3]!, {s6, s7}\n\t"            \
    "vldmia %[x0]!, {s8, s9}\n\t" MDY_ROW4("s10", "s11", "s12", "s13")      \
    "vldmia %[x1]!, {s8, s9}\n\t" MDY_ROW4("s14", "s15", "s16", "s17")      \
    "vldmia %[x2]!, {s8, s9}\n\t" MDY_ROW4("s18", "s19", "s20", "s21")      \
    "vldmia %[x3]!, {s8, s9}\n\t" MDY_ROW4("s22", "s23", "s24", "s25")
#define MDY_PAIRS_5TH "vldmia %[x4]!, {s8, s9}\n\t" MDY_ROW4("s26", "s27", "s28", "s29")
#define MDY_PAIRS_NEXT "subs %[n], %[n], #1\n\t" "bne 1b\n\t"
#define MDY_CLOBBER_S0_S25                                                              \
    "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", \
    "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25"

/* A block's pairs over one tap, the accumulators from acc (row-major) with
 * one VLDM and back with one VSTM: a block with several taps keeps them in
 * memory between taps. NP is 5 or 4. */
MDY_AI void conv_pairs(const int NP, float acc[5][4], const float *xp[5], const float *wp[4],
                       int32_t n)
{
    if (NP == 5)
        __asm__ volatile(
            "vldmia %[acc], {s10-s29}\n\t"
            MDY_PAIRS4 MDY_PAIRS_5TH MDY_PAIRS_NEXT
            "vstmia %[acc], {s10-s29}\n\t"
            : [x0] "+r"(xp[0]), [x1] "+r"(xp[1]), [x2] "+r"(xp[2]), [x3] "+r"(xp[3]),
              [x4] "+r"(xp[4]), [w0] "+r"(wp[0]), [w1] "+r"(wp[1]), [w2] "+r"(wp[2]),
              [w3] "+r"(wp[3]), [n] "+r"(n)
            : [acc] "r"(&acc[0][0])
            : MDY_CLOBBER_S0_S25, "s26", "s27", "s28", "s29", "cc", "memory");
    else
        __asm__ volatile(
            "vldmia %[acc], {s10-s25}\n\t"
            MDY_PAIRS4 MDY_PAIRS_NEXT
            "vstmia %[acc], {s10-s25}\n\t"
            : [x0] "+r"(xp[0]), [x1] "+r"(xp[1]), [x2] "+r"(xp[2]), [x3] "+r"(xp[3]),
              [w0] "+r"(wp[0]), [w1] "+r"(wp[1]), [w2] "+r"(wp[2]), [w3] "+r"(wp[3]), [n] "+r"(n)
            : [acc] "r"(&acc[0][0])
            : MDY_CLOBBER_S0_S25, "cc", "memory");
}

/* A whole single-tap block (pointwise) in one loop: the bias into every
 * position's accumulators with one VLDM each, the n channel pairs as above,
 * then each position's 4 outputs stored with one VSTM, ys apart: no
 * accumulator passes through memory. NP is 5 or 4. */
MDY_AI void conv_pw_block(const int NP, const float *bias, const float *xp[5],
                          const float *wp[4], int32_t n, float *y, size_t ys)
{
    /* the bias pointer, the first weight row and the output pointer and
     * stride reach the asm through memory, each loaded into a pointer register
     * when it is needed (the bias before the loop, through w0; the outputs
     * after it, through w0 and w1): the loop holds every other integer
     * register, and builds with a frame pointer (-O1, -g) have one fewer */
    const uintptr_t io[4] = {(uintptr_t)bias, (uintptr_t)wp[0], (uintptr_t)y,
                             ys * sizeof(float)};
    if (NP == 5)
        __asm__ volatile(
            "ldr %[w0], [%[o]]\n\t"
            "vldmia %[w0], {s10-s13}\n\t" "vldmia %[w0], {s14-s17}\n\t"
            "vldmia %[w0], {s18-s21}\n\t" "vldmia %[w0], {s22-s25}\n\t"
            "vldmia %[w0], {s26-s29}\n\t"
            "ldr %[w0], [%[o], #4]\n\t"
            MDY_PAIRS4 MDY_PAIRS_5TH MDY_PAIRS_NEXT
            "ldr %[w0], [%[o], #8]\n\t" "ldr %[w1], [%[o], #12]\n\t"
            "vstmia %[w0], {s10-s13}\n\t" "add %[w0], %[w0], %[w1]\n\t"
            "vstmia %[w0], {s14-s17}\n\t" "add %[w0], %[w0], %[w1]\n\t"
            "vstmia %[w0], {s18-s21}\n\t" "add %[w0], %[w0], %[w1]\n\t"
            "vstmia %[w0], {s22-s25}\n\t" "add %[w0], %[w0], %[w1]\n\t"
            "vstmia %[w0], {s26-s29}\n\t"
            : [x0] "+r"(xp[0]), [x1] "+r"(xp[1]), [x2] "+r"(xp[2]), [x3] "+r"(xp[3]),
              [x4] "+r"(xp[4]), [w0] "+r"(wp[0]), [w1] "+r"(wp[1]), [w2] "+r"(wp[2]),
              [w3] "+r"(wp[3]), [n] "+r"(n)
            : [o] "r"(io)
            : MDY_CLOBBER_S0_S25, "s26", "s27", "s28", "s29", "cc", "memory");
    else
        __asm__ volatile(
            "ldr %[w0], [%[o]]\n\t"
            "vldmia %[w0], {s10-s13}\n\t" "vldmia %[w0], {s14-s17}\n\t"
            "vldmia %[w0], {s18-s21}\n\t" "vldmia %[w0], {s22-s25}\n\t"
            "ldr %[w0], [%[o], #4]\n\t"
            MDY_PAIRS4 MDY_PAIRS_NEXT
            "ldr %[w0], [%[o], #8]\n\t" "ldr %[w1], [%[o], #12]\n\t"
            "vstmia %[w0], {s10-s13}\n\t" "add %[w0], %[w0], %[w1]\n\t"
            "vstmia %[w0], {s14-s17}\n\t" "add %[w0], %[w0], %[w1]\n\t"
            "vstmia %[w0], {s18-s21}\n\t" "add %[w0], %[w0], %[w1]\n\t"
            "vstmia %[w0], {s22-s25}\n\t"
            : [x0] "+r"(xp[0]), [x1] "+r"(xp[1]), [x2] "+r"(xp[2]), [x3] "+r"(xp[3]),
              [w0] "+r"(wp[0]), [w1] "+r"(wp[1]), [w2] "+r"(wp[2]), [w3] "+r"(wp[3]),
              [n] "+r"(n)
            : [o] "r"(io)
            : MDY_CLOBBER_S0_S25, "cc", "memory");
}
#undef MDY_ROW4
#undef MDY_PAIRS4
#undef MDY_PAIRS_5TH
#undef MDY_PAIRS_NEXT
#undef MDY_CLOBBER_S0_S25
#endif

/* The NP x NO block over nkh x nkw valid taps: x0 is the first position's
 * input at its first valid tap, positions xs floats apart; w0 the first output
 * channel's weight at that tap, channels ws apart. Tap (kh, kw) from there
 * moves x by (kh*in_w + kw)*in_c and w by (kh*k_w + kw)*in_c. */
MDY_AI void conv_block(const int ASM, const int NP, const int NO, const mdy_conv_params *p,
                       const float *x0, size_t xs, const float *w0, size_t ws,
                       int32_t nkh, int32_t nkw, const float *bias, float *y0, size_t ys)
{
    const int32_t in_c = p->in_c;
    float acc[5][4];
    int32_t kh, kw;
    int j, k;
    (void)ASM; /* only Arm builds have the assembly loops */

#ifdef MDY_CONV_VLDM
    if (ASM && (NP == 5 || NP == 4) && NO == 4 && nkh == 1 && nkw == 1 && bias && in_c >= 2 &&
        !(in_c & 1)) {
        const float *xp[5], *wp[4];
MDY_UNROLL(5)
        for (j = 0; j < NP; ++j)
            xp[j] = x0 + j * xs;
MDY_UNROLL(4)
        for (k = 0; k < NO; ++k)
            wp[k] = w0 + k * ws;
        conv_pw_block(NP, bias, xp, wp, in_c / 2, y0, ys);
        return;
    }
#endif
MDY_UNROLL(5)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (k = 0; k < NO; ++k)
            acc[j][k] = bias ? bias[k] : 0.0f;

    for (kh = 0; kh < nkh; ++kh) {
        for (kw = 0; kw < nkw; ++kw) {
            const float *xp[5], *wp[4];
            int32_t i;
MDY_UNROLL(5)
            for (j = 0; j < NP; ++j)
                xp[j] = x0 + j * xs + ((size_t)kh * p->in_w + kw) * in_c;
MDY_UNROLL(4)
            for (k = 0; k < NO; ++k)
                wp[k] = w0 + k * ws + ((size_t)kh * p->k_w + kw) * in_c;
            i = in_c;
#ifdef MDY_CONV_VLDM
            if (ASM && (NP == 5 || NP == 4) && NO == 4 && i >= 2) {
                conv_pairs(NP, acc, xp, wp, i / 2);
                i &= 1;
            }
#endif
            for (; i >= 4; i -= 4) {
                int u;
MDY_UNROLL(4)
                for (u = 0; u < 4; ++u) {
                    float wv[4];
MDY_UNROLL(4)
                    for (k = 0; k < NO; ++k)
                        wv[k] = wp[k][u];
MDY_UNROLL(5)
                    for (j = 0; j < NP; ++j) {
                        const float xv = xp[j][u];
MDY_UNROLL(4)
                        for (k = 0; k < NO; ++k)
                            acc[j][k] = fmaf(xv, wv[k], acc[j][k]);
                    }
                }
MDY_UNROLL(5)
                for (j = 0; j < NP; ++j)
                    xp[j] += 4;
MDY_UNROLL(4)
                for (k = 0; k < NO; ++k)
                    wp[k] += 4;
            }
            for (; i > 0; --i) {
                float wv[4];
MDY_UNROLL(4)
                for (k = 0; k < NO; ++k)
                    wv[k] = *wp[k]++;
MDY_UNROLL(5)
                for (j = 0; j < NP; ++j) {
                    const float xv = *xp[j]++;
MDY_UNROLL(4)
                    for (k = 0; k < NO; ++k)
                        acc[j][k] = fmaf(xv, wv[k], acc[j][k]);
                }
            }
        }
    }
MDY_UNROLL(5)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (k = 0; k < NO; ++k)
            y0[j * ys + k] = acc[j][k];
}

/* NP positions x all output channels (blocks of 4, then one at a time). */
MDY_AI void conv_positions(const int ASM, const int NP, const mdy_conv_params *p, const float *x0,
                           size_t xs, const float *w, const float *bias,
                           int32_t nkh, int32_t nkw, float *y0)
{
    const int32_t out_c = p->out_c;
    const size_t ws = (size_t)p->k_h * p->k_w * p->in_c;
    int32_t o;
    for (o = 0; o + 4 <= out_c; o += 4)
        conv_block(ASM, NP, 4, p, x0, xs, w + o * ws, ws, nkh, nkw,
                   bias ? bias + o : NULL, y0 + o, (size_t)out_c);
    for (; o < out_c; ++o)
        conv_block(ASM, NP, 1, p, x0, xs, w + o * ws, ws, nkh, nkw,
                   bias ? bias + o : NULL, y0 + o, (size_t)out_c);
}

/* n positions of one run, positions xs apart; x0 and w at the first valid tap. */
MDY_AI void conv_run(const int ASM, const mdy_conv_params *p, const float *x0, size_t xs, int32_t n,
                     const float *w, const float *bias,
                     int32_t nkh, int32_t nkw, float *y0)
{
    const size_t ys = (size_t)p->out_c;
    /* n = 5a + 4b where it can be (every n >= 12), so that no block of 1 to
     * 3 positions is left: b = 4 (n mod 5) mod 5 blocks of 4, then 5s */
    int32_t fours = (4 * (n % 5)) % 5;
    if (4 * fours > n)
        fours = 0;
    for (; fours > 0; --fours, n -= 4, x0 += 4 * xs, y0 += 4 * ys)
        conv_positions(ASM, 4, p, x0, xs, w, bias, nkh, nkw, y0);
    for (; n >= 5; n -= 5, x0 += 5 * xs, y0 += 5 * ys)
        conv_positions(ASM, 5, p, x0, xs, w, bias, nkh, nkw, y0);
    if (n >= 4) {
        conv_positions(ASM, 4, p, x0, xs, w, bias, nkh, nkw, y0);
        n -= 4, x0 += 4 * xs, y0 += 4 * ys;
    }
    if (n >= 2) {
        conv_positions(ASM, 2, p, x0, xs, w, bias, nkh, nkw, y0);
        n -= 2, x0 += 2 * xs, y0 += 2 * ys;
    }
    if (n >= 1)
        conv_positions(ASM, 1, p, x0, xs, w, bias, nkh, nkw, y0);
}

/* First valid tap index and one past the last for output coordinate `o`. */
static void tap_range(int32_t o, int32_t stride, int32_t pad, int32_t k, int32_t in,
                      int32_t *k0, int32_t *k1)
{
    const int32_t start = o * stride - pad;
    *k0 = start < 0 ? -start : 0;
    *k1 = in - start < k ? in - start : k;
    if (*k1 < *k0)
        *k1 = *k0;
}

/* The kernel, ASM: whether its blocks may take the assembly loops (channel
 * pairs exist). An instance without them keeps every block's accumulators in
 * registers: one that has them passes them through memory, which a 1-channel
 * input (a first conv on grayscale) would pay on every tap. */
MDY_AI void conv_all(const int ASM, const mdy_conv_params *p, const float *x,
                     const float *w, const float *bias, float *y)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const size_t xs = (size_t)p->stride_w * in_c;
    int32_t oh, ow;

    if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
        p->pad_top == 0 && p->pad_left == 0 && p->out_h == p->in_h && p->out_w == p->in_w) {
        /* pointwise: the whole map is one run of contiguous positions; the
         * constant single tap lets the compiler drop the tap loops */
        conv_run(ASM, p, x, (size_t)in_c, p->out_h * p->out_w, w, bias, 1, 1, y);
        return;
    }
    for (oh = 0; oh < p->out_h; ++oh) {
        const int32_t ih0 = oh * p->stride_h - p->pad_top;
        int32_t kh0, kh1;
        tap_range(oh, p->stride_h, p->pad_top, p->k_h, p->in_h, &kh0, &kh1);
        for (ow = 0; ow < p->out_w;) {
            int32_t kw0, kw1, n = 1, a, b;
            tap_range(ow, p->stride_w, p->pad_left, p->k_w, p->in_w, &kw0, &kw1);
            /* the run: following positions with the same valid taps */
            while (ow + n < p->out_w) {
                tap_range(ow + n, p->stride_w, p->pad_left, p->k_w, p->in_w, &a, &b);
                if (a != kw0 || b != kw1)
                    break;
                ++n;
            }
            if (kh1 > kh0 && kw1 > kw0)
                conv_run(ASM, p, x + ((size_t)(ih0 + kh0) * p->in_w
                                 + (ow * p->stride_w - p->pad_left + kw0)) * in_c,
                         xs, n, w + ((size_t)kh0 * p->k_w + kw0) * in_c, bias,
                         kh1 - kh0, kw1 - kw0, y + ((size_t)oh * p->out_w + ow) * out_c);
            else
                conv_run(ASM, p, x, xs, n, w, bias, 0, 0, /* no valid tap: bias only */
                         y + ((size_t)oh * p->out_w + ow) * out_c);
            ow += n;
        }
    }
}

void mdy_conv2d_nhwc_f32(const mdy_conv_params *p, const float *x,
                         const float *w, const float *bias, float *y)
{
#ifdef MDY_CONV_VLDM
    if (p->in_c >= 2) {
        conv_all(1, p, x, w, bias, y);
        return;
    }
#endif
    conv_all(0, p, x, w, bias, y);
}

int32_t mdy_conv2d_nhwc_f32_get_buffer_size(const mdy_conv_params *p)
{
    (void)p; /* the blocked kernel keeps its blocks in registers */
    return 0;
}
