/* Conv 2D input gradient through a frozen int8 layer, groups == 1:
 * register-blocked, the blocking of ../fp32/mdy_conv2d_nhwc_f32_igrad.c.
 *
 * dx[ih][iw][i] collects g * (float)w[o][kh][kw][i], g = dy[oh][ow][o] *
 * w_scale[o] (rounded once, as the reference does), in the reference's order
 * (the scatter loop over output positions, taps, then o), one fmaf per term,
 * so the result is bit-identical. Each int8 code is converted to float once
 * per block and used for every position of it. Two blockings keep that order:
 *  - pointwise (1x1, stride 1, no padding): each input element gets exactly
 *    the terms o = 0..out_c-1 of its own position, so NP positions x 4 input
 *    channels are summed in registers (NP + 2 loads for 4*NP MACs: the
 *    weights are converted to float once per map, not once per block);
 *  - otherwise, per (position, tap) the terms of o = 0..out_c-1 are added to
 *    a block of up to 16 input channels held in registers instead of being loaded
 *    and stored for every o. */
#include <math.h>
#include <stddef.h>

#include "medyate.h"
#include "../fp32/mdy_blocking.h"
#include "mdy_s8_dsp.h"

/* Pointwise on a map of PW_FLOAT_MIN positions or more: the float weights of
 * PW_CHUNK output channels x 4 input channels live on the stack, converted
 * once for the whole map instead of once per block of positions; chunking o
 * keeps each element's order of terms (a partial sum goes through dx
 * exactly). 512 bytes of stack. On a smaller map (a real model's last
 * stages: 4x4) the conversion, the stores and the partial sums cost more
 * than they save, so each block converts the codes it uses (bench/
 * results/kernel_instr.md, and the demo's 4x4 layers). */
#define PW_CHUNK 32
#define PW_FLOAT_MIN 24

/* NP positions x NI input channels at dx0, the terms of m output channels:
 * their weights wf[o][0..NI) (CODES 0) or the int8 rows wc, in_c apart
 * (CODES 1); dy rows dy_stride apart. */
MDY_AI void pw_block(const int NP, const int NI, const int CODES, int32_t m, int32_t in_c,
                     int32_t dy_stride, const float (*wf)[4], const int8_t *wc,
                     const float *sc, const float *dy0, float *dx0, int accumulate)
{
    float acc[6][4];
    const float *dyp[6];
    float *dxp[6];
    int32_t o;
    int j, q;

MDY_UNROLL(6)
    for (j = 0; j < NP; ++j) {
        dyp[j] = dy0 + (size_t)j * dy_stride;
        dxp[j] = dx0 + (size_t)j * in_c;
MDY_UNROLL(4)
        for (q = 0; q < NI; ++q)
            acc[j][q] = accumulate ? dxp[j][q] : 0.0f;
    }
    for (o = 0; o < m; ++o) {
        float wv[4];
MDY_UNROLL(4)
        for (q = 0; q < NI; ++q)
            wv[q] = CODES ? (float)wc[q] : wf[o][q];
        if (CODES)
            wc += in_c;
MDY_UNROLL(6)
        for (j = 0; j < NP; ++j) {
            const float g = dyp[j][o] * sc[o];
MDY_UNROLL(4)
            for (q = 0; q < NI; ++q)
                acc[j][q] = fmaf(g, wv[q], acc[j][q]);
        }
    }
MDY_UNROLL(6)
    for (j = 0; j < NP; ++j)
MDY_UNROLL(4)
        for (q = 0; q < NI; ++q)
            dxp[j][q] = acc[j][q];
}

/* Every position of the map, NI input channels at dx0, one chunk of float
 * weights. */
MDY_AI void pw_map(const int NI, int32_t n, int32_t m, int32_t in_c, int32_t out_c,
                   const float (*wf)[4], const float *sc, const float *dy, float *dx,
                   int accumulate)
{
    for (; n >= 6; n -= 6, dy += 6 * out_c, dx += 6 * in_c)
        pw_block(6, NI, 0, m, in_c, out_c, wf, 0, sc, dy, dx, accumulate);
    if (n >= 4) {
        pw_block(4, NI, 0, m, in_c, out_c, wf, 0, sc, dy, dx, accumulate);
        n -= 4, dy += 4 * out_c, dx += 4 * in_c;
    }
    if (n >= 2) {
        pw_block(2, NI, 0, m, in_c, out_c, wf, 0, sc, dy, dx, accumulate);
        n -= 2, dy += 2 * out_c, dx += 2 * in_c;
    }
    if (n == 1)
        pw_block(1, NI, 0, m, in_c, out_c, wf, 0, sc, dy, dx, accumulate);
}

/* Out of line, one per width: the block loops then have the registers to
 * themselves (inlined into the conversion loop they spilled and reloaded
 * their pointers around every block). */
static MDY_NOINLINE void pw_map4(int32_t n, int32_t m, int32_t in_c, int32_t out_c,
                                 const float (*wf)[4], const float *sc, const float *dy,
                                 float *dx, int accumulate)
{
    pw_map(4, n, m, in_c, out_c, wf, sc, dy, dx, accumulate);
}

static MDY_NOINLINE void pw_map1(int32_t n, int32_t m, int32_t in_c, int32_t out_c,
                                 const float (*wf)[4], const float *sc, const float *dy,
                                 float *dx, int accumulate)
{
    pw_map(1, n, m, in_c, out_c, wf, sc, dy, dx, accumulate);
}

/* NP positions, every input channel, the codes converted in the block. */
MDY_AI void pw_codes(const int NP, int32_t in_c, int32_t out_c, const int8_t *w,
                     const float *sc, const float *dy, float *dx, int accumulate)
{
    int32_t i;
    for (i = 0; i + 4 <= in_c; i += 4)
        pw_block(NP, 4, 1, out_c, in_c, out_c, 0, w + i, sc, dy, dx + i, accumulate);
    for (; i < in_c; ++i)
        pw_block(NP, 1, 1, out_c, in_c, out_c, 0, w + i, sc, dy, dx + i, accumulate);
}

/* A map of fewer than PW_FLOAT_MIN positions: the codes converted per block. */
static MDY_NOINLINE void pointwise_small(int32_t n, int32_t in_c, int32_t out_c,
                                         const int8_t *w, const float *sc, const float *dy,
                                         float *dx, int accumulate)
{
    for (; n >= 6; n -= 6, dy += 6 * out_c, dx += 6 * in_c)
        pw_codes(6, in_c, out_c, w, sc, dy, dx, accumulate);
    if (n >= 4) {
        pw_codes(4, in_c, out_c, w, sc, dy, dx, accumulate);
        n -= 4, dy += 4 * out_c, dx += 4 * in_c;
    }
    if (n >= 2) {
        pw_codes(2, in_c, out_c, w, sc, dy, dx, accumulate);
        n -= 2, dy += 2 * out_c, dx += 2 * in_c;
    }
    if (n == 1)
        pw_codes(1, in_c, out_c, w, sc, dy, dx, accumulate);
}

/* A map of PW_FLOAT_MIN positions or more: the weights converted once per map. */
static MDY_NOINLINE void pointwise(int32_t n, int32_t in_c, int32_t out_c, const int8_t *w,
                                   const float *sc, const float *dy, float *dx, int accumulate)
{
    float wf[PW_CHUNK][4];
    int32_t i, o0, o;
    int ni;

    /* 4 input channels at a time, the last in_c % 4 one at a time */
    for (i = 0; i < in_c; i += ni) {
        ni = in_c - i >= 4 ? 4 : 1;
        for (o0 = 0; o0 < out_c; o0 += PW_CHUNK) {
            const int32_t m = out_c - o0 < PW_CHUNK ? out_c - o0 : PW_CHUNK;
            const int acc = accumulate || o0 > 0;
            for (o = 0; o < m; ++o) {
                const int8_t *wr = w + (size_t)(o0 + o) * in_c + i;
                if (ni == 4) {
                    /* four codes in one (unaligned) word load */
                    const uint32_t v = mdy_read_s8x4(wr);
                    wf[o][0] = (float)mdy_sext8(v);
                    wf[o][1] = (float)mdy_sext8(v >> 8);
                    wf[o][2] = (float)mdy_sext8(v >> 16);
                    wf[o][3] = (float)mdy_sext8(v >> 24);
                } else {
                    wf[o][0] = (float)wr[0];
                }
            }
            if (ni == 4)
                pw_map4(n, m, in_c, out_c, (const float (*)[4])wf, sc + o0, dy + o0, dx + i,
                        acc);
            else
                pw_map1(n, m, in_c, out_c, (const float (*)[4])wf, sc + o0, dy + o0, dx + i,
                        acc);
        }
    }
}

/* dxp[0..NI) += sum over o of (dyp[o] * sc[o]) * w_o[0..NI), w_o rows ws apart. */
MDY_AI void tap_block(const int NI, int32_t out_c, const float *dyp, const float *sc,
                      const int8_t *wp, size_t ws, float *dxp)
{
    float acc[16];
    int32_t o;
    int q;
MDY_UNROLL(16)
    for (q = 0; q < NI; ++q)
        acc[q] = dxp[q];
    for (o = 0; o < out_c; ++o) {
        const float g = dyp[o] * sc[o];
MDY_UNROLL(16)
        for (q = 0; q < NI; ++q)
            acc[q] = fmaf(g, (float)wp[q], acc[q]);
        wp += ws;
    }
MDY_UNROLL(16)
    for (q = 0; q < NI; ++q)
        dxp[q] = acc[q];
}

void mdy_conv2d_nhwc_s8_igrad(const mdy_conv_params *p, const int8_t *w,
                              const float *w_scales, const float *dy, float *dx,
                              int accumulate)
{
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const size_t ws = (size_t)p->k_h * p->k_w * in_c;
    int32_t oh, ow, kh, kw, i;

    if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
        p->pad_top == 0 && p->pad_left == 0 && p->out_h == p->in_h && p->out_w == p->in_w) {
        const int32_t n = p->in_h * p->in_w;
        if (n < PW_FLOAT_MIN)
            pointwise_small(n, in_c, out_c, w, w_scales, dy, dx, accumulate);
        else
            pointwise(n, in_c, out_c, w, w_scales, dy, dx, accumulate);
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
                    const int8_t *wt = w + ((size_t)kh * p->k_w + kw) * in_c;
                    float *dxp;
                    if (iw < 0 || iw >= p->in_w)
                        continue;
                    dxp = dx + ((size_t)ih * p->in_w + iw) * in_c;
                    for (i = 0; i + 16 <= in_c; i += 16)
                        tap_block(16, out_c, dyp, w_scales, wt + i, ws, dxp + i);
                    if (i + 8 <= in_c) {
                        tap_block(8, out_c, dyp, w_scales, wt + i, ws, dxp + i);
                        i += 8;
                    }
                    if (i + 4 <= in_c) {
                        tap_block(4, out_c, dyp, w_scales, wt + i, ws, dxp + i);
                        i += 4;
                    }
                    for (; i < in_c; ++i)
                        tap_block(1, out_c, dyp, w_scales, wt + i, ws, dxp + i);
                }
            }
        }
    }
}
