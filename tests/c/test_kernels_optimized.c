/*
 * Optimized fp32 and int8 kernels against the reference kernels of the same
 * name.
 *
 * The reference sources are compiled into this file under ref_* names, the
 * optimized ones are linked as the engine's kernels, and both run on the same
 * randomized problems: shapes, strides, padding (also windows larger than the
 * map), odd channel counts, channel multipliers, accumulate flags and
 * run-time index lists (repeats and out-of-range entries included); int8
 * kernels also on random zero points, requantization multipliers and shifts,
 * activation clamps and missing biases. Every output must be bit-identical:
 * the optimized fp32 kernels keep each output's summation order, the int8
 * ones sum the same integers exactly, so nothing is left to a tolerance.
 *
 * Built natively under ASan/UBSan (every buffer has its exact size) and for
 * the Cortex-M7 in QEMU (tests/kernels/test_kernels_optimized.py). With
 * MDY_BENCH the board build also prints instructions per MAC of both versions
 * on fixed shapes (bench/kernel_instr.py reads them).
 */
#include <stdint.h>
#include <string.h>

#include "medyate.h"

/* ------------------------------------------------ the reference, renamed */
#define mdy_conv2d_nhwc_f32 ref_conv2d
#define mdy_conv2d_nhwc_f32_get_buffer_size ref_conv2d_get_buffer_size
#define mdy_conv2d_nhwc_f32_igrad ref_conv2d_igrad
#define mdy_conv2d_nhwc_f32_wgrad ref_conv2d_wgrad
#define mdy_depthwise_conv2d_nhwc_f32 ref_dw
#define mdy_depthwise_conv2d_nhwc_f32_get_buffer_size ref_dw_get_buffer_size
#define mdy_depthwise_conv2d_nhwc_f32_igrad ref_dw_igrad
#define mdy_depthwise_conv2d_nhwc_f32_wgrad ref_dw_wgrad
#define mdy_fully_connected_f32 ref_fc
#define mdy_fully_connected_f32_igrad ref_fc_igrad
#define mdy_fully_connected_f32_wgrad ref_fc_wgrad
#define mdy_sgd_slice_f32 ref_sgd
#define mdy_clamp_f32 ref_clamp
#define mdy_clamp_f32_igrad ref_clamp_igrad
void ref_conv2d(const mdy_conv_params *p, const float *x, const float *w, const float *bias, float *y);
int32_t ref_conv2d_get_buffer_size(const mdy_conv_params *p);
void ref_conv2d_igrad(const mdy_conv_params *p, const float *w, const float *dy, float *dx, int accumulate);
void ref_conv2d_wgrad(const mdy_conv_params *p, const float *x_maps, const uint16_t *sel,
                      int32_t n_sel, const float *dy, float *dw_slices);
void ref_dw(const mdy_conv_params *p, const float *x, const float *w, const float *bias, float *y);
int32_t ref_dw_get_buffer_size(const mdy_conv_params *p);
void ref_dw_igrad(const mdy_conv_params *p, const float *w, const float *dy, float *dx, int accumulate);
void ref_dw_wgrad(const mdy_conv_params *p, const float *x_maps, const uint16_t *sel,
                  int32_t n_sel, const float *dy, float *dw_slices);
void ref_fc(int32_t in_features, int32_t out_features, const float *x, const float *w,
            const float *bias, float *y);
void ref_fc_igrad(int32_t in_features, int32_t out_features, const float *w, const float *dy,
                  float *dx, int accumulate);
void ref_fc_wgrad(int32_t in_features, int32_t out_features, const float *x_vals,
                  const uint16_t *sel, int32_t n_sel, const float *dy, float *dw_slices);
float ref_sgd(int32_t n, float *w, int32_t stride, float *g, float lr);
void ref_clamp(int32_t n, const float *x, float lo, float hi, float *y, uint8_t *mask);
void ref_clamp_igrad(int32_t n, const uint8_t *mask, const float *dy, float *dx, int accumulate);
#include "kernels/reference/fp32/mdy_conv2d_nhwc_f32.c"
#include "kernels/reference/fp32/mdy_conv2d_nhwc_f32_igrad.c"
#include "kernels/reference/fp32/mdy_conv2d_nhwc_f32_wgrad.c"
#include "kernels/reference/fp32/mdy_depthwise_conv2d_nhwc_f32.c"
#include "kernels/reference/fp32/mdy_depthwise_conv2d_nhwc_f32_igrad.c"
#include "kernels/reference/fp32/mdy_depthwise_conv2d_nhwc_f32_wgrad.c"
#include "kernels/reference/fp32/mdy_fully_connected_f32.c"
#include "kernels/reference/fp32/mdy_fully_connected_f32_igrad.c"
#include "kernels/reference/fp32/mdy_fully_connected_f32_wgrad.c"
#include "kernels/reference/fp32/mdy_sgd_slice_f32.c"
#include "kernels/reference/fp32/mdy_clamp_f32.c"
#include "kernels/reference/fp32/mdy_clamp_f32_igrad.c"
#undef mdy_conv2d_nhwc_f32
#undef mdy_conv2d_nhwc_f32_get_buffer_size
#undef mdy_conv2d_nhwc_f32_igrad
#undef mdy_conv2d_nhwc_f32_wgrad
#undef mdy_depthwise_conv2d_nhwc_f32
#undef mdy_depthwise_conv2d_nhwc_f32_get_buffer_size
#undef mdy_depthwise_conv2d_nhwc_f32_igrad
#undef mdy_depthwise_conv2d_nhwc_f32_wgrad
#undef mdy_fully_connected_f32
#undef mdy_fully_connected_f32_igrad
#undef mdy_clamp_f32
#undef mdy_clamp_f32_igrad
#undef mdy_fully_connected_f32_wgrad
#undef mdy_sgd_slice_f32

#define mdy_conv2d_nhwc_s8 ref_conv2d_s8
#define mdy_conv2d_nhwc_s8_get_buffer_size ref_conv2d_s8_get_buffer_size
#define mdy_depthwise_conv2d_nhwc_s8 ref_dw_s8
#define mdy_depthwise_conv2d_nhwc_s8_get_buffer_size ref_dw_s8_get_buffer_size
#define mdy_fully_connected_s8 ref_fc_s8
#define mdy_conv2d_nhwc_s8_igrad ref_conv2d_s8_igrad
#define mdy_conv2d_nhwc_s8_wgrad ref_conv2d_s8_wgrad
#define mdy_depthwise_conv2d_nhwc_s8_igrad ref_dw_s8_igrad
#define mdy_depthwise_conv2d_nhwc_s8_wgrad ref_dw_s8_wgrad
#define mdy_clamp_mask_s8 ref_clamp_mask_s8
#define mdy_fully_connected_s8_igrad ref_fc_s8_igrad
#define mdy_fully_connected_s8_wgrad ref_fc_s8_wgrad
#define mdy_sgd_slice_s8 ref_sgd_s8
#define mdy_add_s8 ref_add_s8
#define mdy_table_s8 ref_table_s8
void ref_add_s8(int32_t n, const mdy_s8_add_quant *q, const int8_t *a, const int8_t *b,
                int8_t *y);
void ref_table_s8(int32_t n, const int8_t *table, const int8_t *x, int8_t *y);
void ref_fc_s8_igrad(int32_t in_features, int32_t out_features, const int8_t *w,
                     const float *w_scales, const float *dy, float *dx, int accumulate);
void ref_fc_s8_wgrad(int32_t in_features, int32_t out_features, const int8_t *x_vals,
                     int32_t x_zero, float x_scale, const uint16_t *sel, int32_t n_sel,
                     const float *dy, float *dw_slices);
float ref_sgd_s8(int32_t groups, int32_t group, int8_t *w, int32_t stride,
                 const float *w_scales, float *g, float lr, uint32_t *rng);
void ref_clamp_mask_s8(int32_t n, const int8_t *y, int32_t act_min, int32_t act_max,
                       uint8_t *mask);
void ref_conv2d_s8_igrad(const mdy_conv_params *p, const int8_t *w, const float *w_scales,
                         const float *dy, float *dx, int accumulate);
void ref_conv2d_s8_wgrad(const mdy_conv_params *p, const int8_t *x_maps, int32_t x_zero,
                         float x_scale, const uint16_t *sel, int32_t n_sel, const float *dy,
                         float *dw_slices);
void ref_dw_s8_igrad(const mdy_conv_params *p, const int8_t *w, const float *w_scales,
                     const float *dy, float *dx, int accumulate);
void ref_dw_s8_wgrad(const mdy_conv_params *p, const int8_t *x_maps, int32_t x_zero,
                     float x_scale, const uint16_t *sel, int32_t n_sel, const float *dy,
                     float *dw_slices);
void ref_conv2d_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q, const int8_t *x,
                   const int8_t *w, const int32_t *bias, int8_t *y);
int32_t ref_conv2d_s8_get_buffer_size(const mdy_conv_params *p);
void ref_dw_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q, const int8_t *x,
               const int8_t *w, const int32_t *bias, int8_t *y);
int32_t ref_dw_s8_get_buffer_size(const mdy_conv_params *p);
void ref_fc_s8(int32_t in_features, int32_t out_features, const mdy_s8_conv_quant *q,
               const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y);
#include "kernels/reference/int8/mdy_conv2d_nhwc_s8.c"
#include "kernels/reference/int8/mdy_depthwise_conv2d_nhwc_s8.c"
#include "kernels/reference/int8/mdy_fully_connected_s8.c"
#include "kernels/reference/int8/mdy_conv2d_nhwc_s8_igrad.c"
#include "kernels/reference/int8/mdy_conv2d_nhwc_s8_wgrad.c"
#include "kernels/reference/int8/mdy_depthwise_conv2d_nhwc_s8_igrad.c"
#include "kernels/reference/int8/mdy_depthwise_conv2d_nhwc_s8_wgrad.c"
#include "kernels/reference/int8/mdy_clamp_mask_s8.c"
#include "kernels/reference/int8/mdy_fully_connected_s8_igrad.c"
#include "kernels/reference/int8/mdy_fully_connected_s8_wgrad.c"
#include "kernels/reference/int8/mdy_sgd_slice_s8.c"
#include "kernels/reference/int8/mdy_add_s8.c"
#include "kernels/reference/int8/mdy_table_s8.c"
#undef mdy_conv2d_nhwc_s8
#undef mdy_conv2d_nhwc_s8_get_buffer_size
#undef mdy_depthwise_conv2d_nhwc_s8
#undef mdy_depthwise_conv2d_nhwc_s8_get_buffer_size
#undef mdy_fully_connected_s8
#undef mdy_conv2d_nhwc_s8_igrad
#undef mdy_conv2d_nhwc_s8_wgrad
#undef mdy_depthwise_conv2d_nhwc_s8_igrad
#undef mdy_depthwise_conv2d_nhwc_s8_wgrad
#undef mdy_clamp_mask_s8
#undef mdy_fully_connected_s8_igrad
#undef mdy_fully_connected_s8_wgrad
#undef mdy_sgd_slice_s8
#undef mdy_add_s8
#undef mdy_table_s8

/* The optimized int8 kernels' requantization (checked equal to mdy_requantize). */
#include "kernels/cortex-m7/int8/mdy_s8_dsp.h"

/* ------------------------------------------------ platform: output, memory */
#ifdef MDY_ON_BOARD
#include "mdy_board.h"
static void out(const char *s)
{
    board_uart_write((const uint8_t *)s, strlen(s));
}
/* A bump allocator over one static pool, reset per case. */
static float pool[48 * 1024];
static size_t pool_used;
static void *alloc_bytes(size_t n)
{
    const size_t words = (n + 7u) / 4u & ~(size_t)1;
    void *p;
    if (pool_used + words > sizeof pool / sizeof pool[0]) {
        out("FAIL: test pool exhausted\n");
        board_exit(2);
    }
    p = &pool[pool_used];
    pool_used += words;
    return p;
}
static void release_all(void) { pool_used = 0; }
#else
#include <stdio.h>
#include <stdlib.h>
static void out(const char *s) { fputs(s, stdout); }
/* Exact sizes, so AddressSanitizer reports any access past a buffer. */
static void *live[64];
static int n_live;
static void *alloc_bytes(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p || n_live == 64) {
        fputs("out of memory\n", stderr);
        exit(2);
    }
    live[n_live++] = p;
    return p;
}
static void release_all(void)
{
    while (n_live)
        free(live[--n_live]);
}
#endif

static void out_int(long v)
{
    char b[24];
    int i = (int)sizeof b;
    int neg = v < 0;
    unsigned long u = neg ? 0ul - (unsigned long)v : (unsigned long)v;
    b[--i] = 0;
    do {
        b[--i] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u);
    if (neg)
        b[--i] = '-';
    out(&b[i]);
}

/* ------------------------------------------------ random problems */
static uint32_t rng = 2463534242u;
static uint32_t next(void) /* xorshift32 */
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}
static int32_t rnd(int32_t lo, int32_t hi) { return lo + (int32_t)(next() % (uint32_t)(hi - lo + 1)); }
static float frand(void) { return (float)(next() >> 8) / 8388608.0f - 1.0f; }

static float *fbuf(size_t n)
{
    float *p = (float *)alloc_bytes(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; ++i)
        p[i] = frand();
    return p;
}
static float *fcopy(const float *a, size_t n)
{
    float *p = (float *)alloc_bytes(n * sizeof(float));
    memcpy(p, a, n * sizeof(float));
    return p;
}

static int failures, checks;
static void expect_same(const char *what, int case_no, const float *a, const float *b, size_t n)
{
    ++checks;
    if (memcmp(a, b, n * sizeof(float)) != 0) {
        size_t i = 0;
        while (i < n && memcmp(&a[i], &b[i], sizeof(float)) == 0)
            ++i;
        ++failures;
        out("FAIL ");
        out(what);
        out(" case ");
        out_int(case_no);
        out(": first difference at element ");
        out_int((long)i);
        out(" of ");
        out_int((long)n);
        out("\n");
    }
}

/* A conv problem: random shape, stride and padding; bottom/right padding in
 * [0, k) as ONNX allows; `dw` makes it depthwise with multiplier 1..3. */
static mdy_conv_params conv_problem(int dw, int pointwise)
{
    mdy_conv_params p;
    int32_t pb, pr;
    memset(&p, 0, sizeof p);
    if (pointwise) {
        p.k_h = p.k_w = 1;
        p.stride_h = p.stride_w = rnd(0, 3) ? 1 : 2;
    } else if (dw && next() % 2u) {
        p.k_h = p.k_w = 3; /* the depthwise kernels' fast paths */
        p.stride_h = p.stride_w = rnd(1, 2);
    } else if (dw && next() % 3u == 0) {
        p.k_h = p.k_w = next() % 2u ? 5 : 7; /* wide depthwise windows, stride 1 or 2 */
        p.stride_h = p.stride_w = rnd(1, 2);
    } else {
        p.k_h = rnd(1, 5);
        p.k_w = next() % 3u ? p.k_h : rnd(1, 5);
        p.stride_h = rnd(1, 3);
        p.stride_w = next() % 2u ? p.stride_h : rnd(1, 3);
    }
    p.in_h = rnd(1, 9);
    p.in_w = rnd(1, 11);
    if (dw && p.k_h == 7 && next() % 2u) { /* maps with runs of 7x7 windows inside */
        p.in_h = rnd(7, 14);
        p.in_w = rnd(7, 16);
    }
    p.pad_top = rnd(0, p.k_h - 1);
    p.pad_left = rnd(0, p.k_w - 1);
    pb = rnd(0, p.k_h - 1);
    pr = rnd(0, p.k_w - 1);
    if (p.in_h + p.pad_top + pb < p.k_h)
        pb = p.k_h - p.in_h - p.pad_top;
    if (p.in_w + p.pad_left + pr < p.k_w)
        pr = p.k_w - p.in_w - p.pad_left;
    p.out_h = (p.in_h + p.pad_top + pb - p.k_h) / p.stride_h + 1;
    p.out_w = (p.in_w + p.pad_left + pr - p.k_w) / p.stride_w + 1;
    if (dw) {
        p.in_c = rnd(1, 13);
        p.out_c = p.in_c * (next() % 4u ? 1 : rnd(2, 3));
        p.groups = p.in_c;
    } else {
        p.in_c = next() % 4u ? rnd(1, 19) : 4 * rnd(1, 8);
        p.out_c = next() % 4u ? rnd(1, 19) : 4 * rnd(1, 8);
        p.groups = 1;
    }
    return p;
}

/* A 7x7 depthwise problem (mcunet's widest), stride 1 or 2, multiplier 1
 * mostly, maps from smaller than the window to several windows wide, any
 * padding up to 3 (windows inside the map, on the border and in padding). */
static mdy_conv_params dw7_problem(void)
{
    mdy_conv_params p;
    int32_t pb, pr;
    memset(&p, 0, sizeof p);
    p.k_h = p.k_w = 7;
    p.stride_h = p.stride_w = rnd(1, 2);
    p.in_h = rnd(4, 16);
    p.in_w = rnd(4, 18);
    p.pad_top = rnd(0, 3);
    p.pad_left = rnd(0, 3);
    pb = rnd(0, 3);
    pr = rnd(0, 3);
    if (p.in_h + p.pad_top + pb < p.k_h)
        pb = p.k_h - p.in_h - p.pad_top;
    if (p.in_w + p.pad_left + pr < p.k_w)
        pr = p.k_w - p.in_w - p.pad_left;
    p.out_h = (p.in_h + p.pad_top + pb - p.k_h) / p.stride_h + 1;
    p.out_w = (p.in_w + p.pad_left + pr - p.k_w) / p.stride_w + 1;
    p.in_c = next() % 2u ? 4 * rnd(1, 4) : rnd(1, 13);
    p.out_c = p.in_c * (next() % 8u ? 1 : 2);
    p.groups = p.in_c;
    return p;
}

/* A run-time channel index list: n_sel entries of [0, in_c), sometimes a
 * repeat and sometimes an out-of-range entry (the kernels must skip it). */
static uint16_t *index_list(int32_t in_c, int32_t *n_sel)
{
    int32_t n = rnd(1, in_c + 2), k;
    uint16_t *sel = (uint16_t *)alloc_bytes((size_t)n * sizeof(uint16_t));
    for (k = 0; k < n; ++k)
        sel[k] = (uint16_t)rnd(0, in_c - 1);
    if (n > 2 && next() % 3u == 0)
        sel[n - 1] = (uint16_t)(in_c + rnd(0, 3));
    *n_sel = n;
    return sel;
}

static void test_conv(int dw, int pointwise, int case_no)
{
    const mdy_conv_params p = conv_problem(dw, pointwise);
    const int32_t wic = dw ? 1 : p.in_c;
    const size_t nx = (size_t)p.in_h * p.in_w * p.in_c, ny = (size_t)p.out_h * p.out_w * p.out_c;
    const size_t nw = (size_t)p.out_c * p.k_h * p.k_w * wic;
    const size_t map = (size_t)p.in_h * p.in_w;
    const size_t slice = dw ? (size_t)(p.out_c / p.in_c) * p.k_h * p.k_w
                            : (size_t)p.out_c * p.k_h * p.k_w;
    const int accumulate = (int)(next() % 2u);
    float *x = fbuf(nx), *w = fbuf(nw), *bias = next() % 4u ? fbuf((size_t)p.out_c) : NULL;
    float *y_ref = fbuf(ny), *y = fbuf(ny), *dy = fbuf(ny);
    float *dx_ref = fbuf(nx), *dx = fcopy(dx_ref, nx);
    int32_t n_sel;
    const uint16_t *sel = index_list(p.in_c, &n_sel);
    float *maps = fbuf((size_t)n_sel * map);
    float *dw_ref = fbuf((size_t)n_sel * slice), *dwv = fcopy(dw_ref, (size_t)n_sel * slice);

    if (dw) {
        ref_dw(&p, x, w, bias, y_ref);
        mdy_depthwise_conv2d_nhwc_f32(&p, x, w, bias, y);
        expect_same("depthwise forward", case_no, y_ref, y, ny);
        ref_dw_igrad(&p, w, dy, dx_ref, accumulate);
        mdy_depthwise_conv2d_nhwc_f32_igrad(&p, w, dy, dx, accumulate);
        expect_same("depthwise input gradient", case_no, dx_ref, dx, nx);
        ref_dw_wgrad(&p, maps, sel, n_sel, dy, dw_ref);
        mdy_depthwise_conv2d_nhwc_f32_wgrad(&p, maps, sel, n_sel, dy, dwv);
        expect_same("depthwise weight gradient", case_no, dw_ref, dwv, (size_t)n_sel * slice);
        ++checks;
        if (mdy_depthwise_conv2d_nhwc_f32_get_buffer_size(&p) != 0) {
            ++failures; /* the runtime gives these kernels no scratch */
            out("FAIL depthwise scratch\n");
        }
    } else {
        ref_conv2d(&p, x, w, bias, y_ref);
        mdy_conv2d_nhwc_f32(&p, x, w, bias, y);
        expect_same(pointwise ? "pointwise forward" : "conv forward", case_no, y_ref, y, ny);
        ref_conv2d_igrad(&p, w, dy, dx_ref, accumulate);
        mdy_conv2d_nhwc_f32_igrad(&p, w, dy, dx, accumulate);
        expect_same(pointwise ? "pointwise input gradient" : "conv input gradient", case_no,
                    dx_ref, dx, nx);
        ref_conv2d_wgrad(&p, maps, sel, n_sel, dy, dw_ref);
        mdy_conv2d_nhwc_f32_wgrad(&p, maps, sel, n_sel, dy, dwv);
        expect_same(pointwise ? "pointwise weight gradient" : "conv weight gradient", case_no,
                    dw_ref, dwv, (size_t)n_sel * slice);
        ++checks;
        if (mdy_conv2d_nhwc_f32_get_buffer_size(&p) != 0) {
            ++failures;
            out("FAIL conv scratch\n");
        }
    }
    release_all();
}

static void test_fc(int case_no)
{
    const int32_t in = next() % 4u ? rnd(1, 40) : 8 * rnd(1, 16);
    const int32_t outf = next() % 4u ? rnd(1, 40) : 8 * rnd(1, 16);
    const int accumulate = (int)(next() % 2u);
    float *x = fbuf((size_t)in), *w = fbuf((size_t)in * outf);
    float *bias = next() % 4u ? fbuf((size_t)outf) : NULL;
    float *y_ref = fbuf((size_t)outf), *y = fbuf((size_t)outf), *dy = fbuf((size_t)outf);
    float *dx_ref = fbuf((size_t)in), *dx = fcopy(dx_ref, (size_t)in);
    int32_t n_sel;
    const uint16_t *sel = index_list(in, &n_sel);
    float *xv = fbuf((size_t)n_sel);
    float *dw_ref = fbuf((size_t)n_sel * outf), *dwv = fcopy(dw_ref, (size_t)n_sel * outf);

    ref_fc(in, outf, x, w, bias, y_ref);
    mdy_fully_connected_f32(in, outf, x, w, bias, y);
    expect_same("fully connected forward", case_no, y_ref, y, (size_t)outf);
    ref_fc_igrad(in, outf, w, dy, dx_ref, accumulate);
    mdy_fully_connected_f32_igrad(in, outf, w, dy, dx, accumulate);
    expect_same("fully connected input gradient", case_no, dx_ref, dx, (size_t)in);
    ref_fc_wgrad(in, outf, xv, sel, n_sel, dy, dw_ref);
    mdy_fully_connected_f32_wgrad(in, outf, xv, sel, n_sel, dy, dwv);
    expect_same("fully connected weight gradient", case_no, dw_ref, dwv, (size_t)n_sel * outf);
    release_all();
}

static void test_sgd(int case_no)
{
    const int32_t n = rnd(1, 70), stride = next() % 2u ? 1 : rnd(2, 9);
    const size_t nw = (size_t)(n - 1) * stride + 1;
    const float lr = 0.001f + 0.1f * (frand() + 1.0f);
    float *w_ref = fbuf(nw), *w = fcopy(w_ref, nw);
    float *g_ref = fbuf((size_t)n), *g = fcopy(g_ref, (size_t)n);
    float sq_ref = ref_sgd(n, w_ref, stride, g_ref, lr);
    float sq = mdy_sgd_slice_f32(n, w, stride, g, lr);
    expect_same("sgd weights", case_no, w_ref, w, nw);
    expect_same("sgd gradient zeroed", case_no, g_ref, g, (size_t)n);
    expect_same("sgd squared norm", case_no, &sq_ref, &sq, 1);
    release_all();
}

/* ------------------------------------------------ int8 */
static int8_t *s8buf(size_t n)
{
    int8_t *p = (int8_t *)alloc_bytes(n ? n : 1);
    size_t i;
    for (i = 0; i < n; ++i)
        p[i] = (int8_t)rnd(-128, 127);
    return p;
}

static void expect_same_s8(const char *what, int case_no, const int8_t *a, const int8_t *b,
                           size_t n)
{
    ++checks;
    if (memcmp(a, b, n) != 0) {
        size_t i = 0;
        while (i < n && a[i] == b[i])
            ++i;
        ++failures;
        out("FAIL ");
        out(what);
        out(" case ");
        out_int(case_no);
        out(": first difference at element ");
        out_int((long)i);
        out(" of ");
        out_int((long)n);
        out(": ");
        out_int(a[i]);
        out(" != ");
        out_int(b[i]);
        out("\n");
    }
}

/* Random per-channel requantization: Q31 multipliers in [2^30, 2^31) as the
 * host computes them, shifts mostly <= 0 (scales below 1) and sometimes
 * above; zero points anywhere in int8; an activation clamp that is the full
 * range, a ReLU-like lower bound or a narrow window. */
static int s8_full_clamp; /* set: s8_quant's clamp is the whole int8 range */

static mdy_s8_conv_quant s8_quant(int32_t out_c)
{
    mdy_s8_conv_quant q;
    int32_t *mult = (int32_t *)alloc_bytes((size_t)out_c * sizeof(int32_t));
    int32_t *shift = (int32_t *)alloc_bytes((size_t)out_c * sizeof(int32_t));
    int32_t o;
    for (o = 0; o < out_c; ++o) {
        mult[o] = (int32_t)(0x40000000u | (next() & 0x3fffffffu));
        shift[o] = next() % 8u ? rnd(-14, 0) : rnd(1, 4);
    }
    q.x_zero = rnd(-128, 127);
    q.y_zero = rnd(-128, 127);
    switch (s8_full_clamp ? 0u : next() % 3u) {
    case 0:
        q.act_min = -128;
        q.act_max = 127;
        break;
    case 1:
        q.act_min = q.y_zero;
        q.act_max = 127;
        break;
    default:
        q.act_min = rnd(-128, 0);
        q.act_max = rnd(q.act_min, 127);
        break;
    }
    q.multiplier = mult;
    q.shift = shift;
    return q;
}

/* Biases of the size real layers have (a few times the accumulator's spread). */
static int32_t *s32_bias(int32_t n)
{
    int32_t *b;
    int32_t i;
    if (next() % 5u == 0)
        return NULL;
    b = (int32_t *)alloc_bytes((size_t)n * sizeof(int32_t));
    for (i = 0; i < n; ++i)
        b[i] = rnd(-(1 << 20), 1 << 20);
    return b;
}

static void test_conv_s8_on(mdy_conv_params p, int dw, int pointwise, int case_no);
static void test_conv_s8(int dw, int pointwise, int case_no)
{
    test_conv_s8_on(conv_problem(dw, pointwise), dw, pointwise, case_no);
}

static void test_conv_s8_on(const mdy_conv_params p, int dw, int pointwise, int case_no)
{
    const int32_t wic = dw ? 1 : p.in_c;
    const size_t nx = (size_t)p.in_h * p.in_w * p.in_c, ny = (size_t)p.out_h * p.out_w * p.out_c;
    const size_t nw = (size_t)p.out_c * p.k_h * p.k_w * wic;
    const mdy_s8_conv_quant q = s8_quant(p.out_c);
    const int8_t *x = s8buf(nx), *w = s8buf(nw);
    const int32_t *bias = s32_bias(p.out_c);
    int8_t *y_ref = s8buf(ny), *y = s8buf(ny);
    if (dw) {
        ref_dw_s8(&p, &q, x, w, bias, y_ref);
        mdy_depthwise_conv2d_nhwc_s8(&p, &q, x, w, bias, y);
        expect_same_s8("int8 depthwise forward", case_no, y_ref, y, ny);
        ++checks;
        if (mdy_depthwise_conv2d_nhwc_s8_get_buffer_size(&p) != ref_dw_s8_get_buffer_size(&p)) {
            ++failures;
            out("FAIL int8 depthwise scratch\n");
        }
    } else {
        ref_conv2d_s8(&p, &q, x, w, bias, y_ref);
        mdy_conv2d_nhwc_s8(&p, &q, x, w, bias, y);
        expect_same_s8(pointwise ? "int8 pointwise forward" : "int8 conv forward", case_no,
                       y_ref, y, ny);
        ++checks;
        if (mdy_conv2d_nhwc_s8_get_buffer_size(&p) != ref_conv2d_s8_get_buffer_size(&p)) {
            ++failures;
            out("FAIL int8 conv scratch\n");
        }
    }
    release_all();
}

/* Per-channel weight scales of real int8 layers (positive, about 2^-7). */
static float *w_scales(int32_t n)
{
    float *s = (float *)alloc_bytes((size_t)n * sizeof(float));
    int32_t i;
    for (i = 0; i < n; ++i)
        s[i] = (1.5f + frand()) * 0.0078125f;
    return s;
}

/* The int8 backward kernels (fp32 gradients through int8 weights and from
 * int8 saved maps) on the same problems as the fp32 ones, with random zero
 * points and scales; their fp32 results must be bit-identical. */
static void test_conv_s8_backward_on(mdy_conv_params p, int dw, int pointwise, int case_no);
static void test_conv_s8_backward(int dw, int pointwise, int case_no)
{
    test_conv_s8_backward_on(conv_problem(dw, pointwise), dw, pointwise, case_no);
}

static void test_conv_s8_backward_on(const mdy_conv_params p, int dw, int pointwise,
                                     int case_no)
{
    const int32_t wic = dw ? 1 : p.in_c;
    const size_t nx = (size_t)p.in_h * p.in_w * p.in_c, ny = (size_t)p.out_h * p.out_w * p.out_c;
    const size_t nw = (size_t)p.out_c * p.k_h * p.k_w * wic;
    const size_t map = (size_t)p.in_h * p.in_w;
    const size_t slice = dw ? (size_t)(p.out_c / p.in_c) * p.k_h * p.k_w
                            : (size_t)p.out_c * p.k_h * p.k_w;
    const int accumulate = (int)(next() % 2u);
    const int8_t *w = s8buf(nw);
    const float *sc = w_scales(p.out_c), *dy = fbuf(ny);
    float *dx_ref = fbuf(nx), *dx = fcopy(dx_ref, nx);
    int32_t n_sel;
    const uint16_t *sel = index_list(p.in_c, &n_sel);
    const int8_t *maps = s8buf((size_t)n_sel * map);
    const int32_t x_zero = rnd(-128, 127);
    const float x_scale = (1.5f + frand()) * 0.03125f;
    float *dw_ref = fbuf((size_t)n_sel * slice), *dwv = fcopy(dw_ref, (size_t)n_sel * slice);
    if (dw) {
        ref_dw_s8_igrad(&p, w, sc, dy, dx_ref, accumulate);
        mdy_depthwise_conv2d_nhwc_s8_igrad(&p, w, sc, dy, dx, accumulate);
        expect_same("int8 depthwise input gradient", case_no, dx_ref, dx, nx);
        ref_dw_s8_wgrad(&p, maps, x_zero, x_scale, sel, n_sel, dy, dw_ref);
        mdy_depthwise_conv2d_nhwc_s8_wgrad(&p, maps, x_zero, x_scale, sel, n_sel, dy, dwv);
        expect_same("int8 depthwise weight gradient", case_no, dw_ref, dwv, (size_t)n_sel * slice);
    } else {
        ref_conv2d_s8_igrad(&p, w, sc, dy, dx_ref, accumulate);
        mdy_conv2d_nhwc_s8_igrad(&p, w, sc, dy, dx, accumulate);
        expect_same(pointwise ? "int8 pointwise input gradient" : "int8 conv input gradient",
                    case_no, dx_ref, dx, nx);
        ref_conv2d_s8_wgrad(&p, maps, x_zero, x_scale, sel, n_sel, dy, dw_ref);
        mdy_conv2d_nhwc_s8_wgrad(&p, maps, x_zero, x_scale, sel, n_sel, dy, dwv);
        expect_same(pointwise ? "int8 pointwise weight gradient" : "int8 conv weight gradient",
                    case_no, dw_ref, dwv, (size_t)n_sel * slice);
    }
    release_all();
}

/* The clamp mask on any length (partial last byte included) and any bounds,
 * the full int8 range, a ReLU's, a narrow or empty window among them. */
static void test_clamp_mask_s8(int case_no)
{
    const int32_t n = rnd(0, 70);
    const int8_t *y = s8buf((size_t)n);
    const int32_t act_min = next() % 4u ? rnd(-128, 0) : rnd(-128, 127);
    const int32_t act_max = next() % 4u ? rnd(act_min, 127) : rnd(-128, 127);
    const size_t bytes = (size_t)(n + 7) / 8;
    int8_t *m_ref = s8buf(bytes), *m = s8buf(bytes);
    memcpy(m, m_ref, bytes);
    ref_clamp_mask_s8(n, y, act_min, act_max, (uint8_t *)m_ref);
    mdy_clamp_mask_s8(n, y, act_min, act_max, (uint8_t *)m);
    expect_same_s8("int8 clamp mask", case_no, m_ref, m, bytes);
    release_all();
}

/* A multiplier and shift as medyate.planner.quant computes them for an add:
 * exactly 1/2 (2^30, 0) for the input of the larger scale, a scale in
 * [1/4, 1/2) (shift -1) or below for the other and for the output, and now
 * and then an exact power of two or a scale of 1/2 or more (the general path). */
static void add_scale(int kind, int32_t *m, int32_t *s)
{
    *m = (int32_t)(0x40000000u | (next() & 0x3fffffffu));
    switch (kind) {
    case 0: *m = 1 << 30; *s = 0; break;
    case 1: *s = -1; break;
    case 2: *s = rnd(-20, -2); break;
    case 3: *m = 1 << 30; *s = rnd(-22, 0); break;
    default: *s = rnd(-3, 2); break;
    }
}

/* The residual add on any length, in place or not, with inputs rescaled as
 * real adds rescale them (one exact, one by a scale below 1/2, either way
 * round) and otherwise, any zero points and clamps. */
static void test_add_s8(int case_no)
{
    const int32_t n = rnd(0, 70);
    mdy_s8_add_quant q;
    const int8_t *a = s8buf((size_t)n), *b = s8buf((size_t)n);
    int8_t *y_ref = s8buf((size_t)n), *y = s8buf((size_t)n);
    const int real = next() % 4u != 0, swap = (int)(next() % 2u), in_place = rnd(0, 2);
    q.a_zero = rnd(-128, 127);
    q.b_zero = rnd(-128, 127);
    q.y_zero = rnd(-128, 127);
    add_scale(real ? (swap ? 1 : 0) : rnd(0, 4), &q.a_multiplier, &q.a_shift);
    add_scale(real ? (swap ? 0 : 1 + (int)(next() % 2u)) : rnd(0, 4), &q.b_multiplier,
              &q.b_shift);
    add_scale(real || next() % 2u ? 2 : rnd(0, 4), &q.y_multiplier, &q.y_shift);
    if (q.y_shift > -12 && real)
        q.y_shift = rnd(-20, -12);   /* 2 max(scale) / (2^20 y_scale): far below 1 */
    q.act_min = next() % 2u ? -128 : rnd(-128, 0);
    q.act_max = next() % 2u ? 127 : rnd(q.act_min, 127);
    if (in_place) {   /* y is a (1) or b (2): the same bytes in both runs */
        int8_t *src = (int8_t *)(in_place == 1 ? a : b);
        memcpy(y_ref, src, (size_t)n);
        memcpy(y, src, (size_t)n);
        ref_add_s8(n, &q, in_place == 1 ? y_ref : a, in_place == 2 ? y_ref : b, y_ref);
        mdy_add_s8(n, &q, in_place == 1 ? y : a, in_place == 2 ? y : b, y);
    } else {
        ref_add_s8(n, &q, a, b, y_ref);
        mdy_add_s8(n, &q, a, b, y);
    }
    expect_same_s8("int8 add", case_no, y_ref, y, (size_t)n);
    release_all();
}

/* The table on any length, in place or not, every code among the inputs. */
static void test_table_s8(int case_no)
{
    const int32_t n = rnd(0, 300);
    const int8_t *table = s8buf(256), *x = s8buf((size_t)n);
    int8_t *y_ref = s8buf((size_t)n), *y = s8buf((size_t)n);
    if (next() % 2u) {
        memcpy(y_ref, x, (size_t)n);
        memcpy(y, x, (size_t)n);
        ref_table_s8(n, table, y_ref, y_ref);
        mdy_table_s8(n, table, y, y);
    } else {
        ref_table_s8(n, table, x, y_ref);
        mdy_table_s8(n, table, x, y);
    }
    expect_same_s8("int8 table", case_no, y_ref, y, (size_t)n);
    release_all();
}

/* Clamp and its mask on any length (partial last mask byte included), in
 * place or not, with or without a mask, on values that sit on the bounds,
 * at +-0, +-infinity and NaN, for ReLU6, ReLU (hi = infinity) and other
 * windows. */
static void test_clamp(int case_no)
{
    static const float special[] = {0.0f, -0.0f, 6.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN};
    const int32_t n = rnd(0, 70);
    const size_t bytes = (size_t)(n + 7) / 8;
    const int kind = rnd(0, 2);
    const float lo = kind == 2 ? -1.0f : 0.0f;
    const float hi = kind == 0 ? 6.0f : kind == 1 ? INFINITY : 1.0f;
    float *x = fbuf((size_t)n), *y_ref, *y;
    int8_t *m_ref = s8buf(bytes ? bytes : 1), *m = s8buf(bytes ? bytes : 1);
    const int in_place = next() % 2u, with_mask = next() % 4u != 0;
    int32_t i;
    for (i = 0; i < n; ++i) {
        x[i] *= 8.0f;
        if (next() % 4u == 0)
            x[i] = special[next() % 8u];
    }
    memcpy(m, m_ref, bytes);
    y_ref = in_place ? fcopy(x, (size_t)n) : fbuf((size_t)n);
    y = in_place ? fcopy(x, (size_t)n) : fbuf((size_t)n);
    ref_clamp(n, in_place ? y_ref : x, lo, hi, y_ref, with_mask ? (uint8_t *)m_ref : NULL);
    mdy_clamp_f32(n, in_place ? y : x, lo, hi, y, with_mask ? (uint8_t *)m : NULL);
    expect_same("clamp", case_no, y_ref, y, (size_t)n);
    expect_same_s8("clamp mask", case_no, m_ref, m, bytes);
    release_all();
}

/* The clamp's input gradient on any length, with dy holding +-0 and NaN,
 * overwriting or accumulating, in place (dx = dy) or not. */
static void test_clamp_igrad(int case_no)
{
    const int32_t n = rnd(0, 70);
    const size_t bytes = (size_t)(n + 7) / 8;
    const int8_t *mask = s8buf(bytes ? bytes : 1);
    const int accumulate = next() % 2u, in_place = !accumulate && next() % 2u;
    float *dy = fbuf((size_t)n), *dx_ref = fbuf((size_t)n), *dx;
    int32_t i;
    for (i = 0; i < n; ++i) {
        if (next() % 6u == 0)
            dy[i] = next() % 2u ? -0.0f : NAN;
        if (next() % 6u == 0)
            dx_ref[i] = -0.0f;
    }
    if (in_place)
        memcpy(dx_ref, dy, (size_t)n * sizeof(float));
    dx = fcopy(dx_ref, (size_t)n);
    ref_clamp_igrad(n, (const uint8_t *)mask, in_place ? dx_ref : dy, dx_ref, accumulate);
    mdy_clamp_f32_igrad(n, (const uint8_t *)mask, in_place ? dx : dy, dx, accumulate);
    expect_same("clamp input gradient", case_no, dx_ref, dx, (size_t)n);
    release_all();
}

static void test_fc_s8(int case_no)
{
    const int32_t in = next() % 4u ? rnd(1, 40) : 8 * rnd(1, 16);
    const int32_t outf = next() % 4u ? rnd(1, 40) : 8 * rnd(1, 16);
    const mdy_s8_conv_quant q = s8_quant(outf);
    const int8_t *x = s8buf((size_t)in), *w = s8buf((size_t)in * outf);
    const int32_t *bias = s32_bias(outf);
    int8_t *y_ref = s8buf((size_t)outf), *y = s8buf((size_t)outf);
    ref_fc_s8(in, outf, &q, x, w, bias, y_ref);
    mdy_fully_connected_s8(in, outf, &q, x, w, bias, y);
    expect_same_s8("int8 fully connected forward", case_no, y_ref, y, (size_t)outf);
    release_all();
}

/* The int8 fully connected gradients: odd and blocked feature counts,
 * accumulate or not, run-time index lists with repeats and out-of-range
 * entries, random zero points and scales. */
static void test_fc_s8_backward(int case_no)
{
    const int32_t in = next() % 4u ? rnd(1, 40) : 8 * rnd(1, 16);
    const int32_t outf = next() % 4u ? rnd(1, 40) : 8 * rnd(1, 16);
    const int accumulate = (int)(next() % 2u);
    const int8_t *w = s8buf((size_t)in * outf);
    const float *sc = w_scales(outf), *dy = fbuf((size_t)outf);
    float *dx_ref = fbuf((size_t)in), *dx = fcopy(dx_ref, (size_t)in);
    int32_t n_sel;
    const uint16_t *sel = index_list(in, &n_sel);
    const int8_t *xv = s8buf((size_t)n_sel);
    const int32_t x_zero = rnd(-128, 127);
    const float x_scale = (1.5f + frand()) * 0.03125f;
    float *dw_ref = fbuf((size_t)n_sel * outf), *dwv = fcopy(dw_ref, (size_t)n_sel * outf);
    ref_fc_s8_igrad(in, outf, w, sc, dy, dx_ref, accumulate);
    mdy_fully_connected_s8_igrad(in, outf, w, sc, dy, dx, accumulate);
    expect_same("int8 fully connected input gradient", case_no, dx_ref, dx, (size_t)in);
    ref_fc_s8_wgrad(in, outf, xv, x_zero, x_scale, sel, n_sel, dy, dw_ref);
    mdy_fully_connected_s8_wgrad(in, outf, xv, x_zero, x_scale, sel, n_sel, dy, dwv);
    expect_same("int8 fully connected weight gradient", case_no, dw_ref, dwv,
                (size_t)n_sel * outf);
    release_all();
}

/* int8 SGD with stochastic rounding: the layouts of a dense conv (strided),
 * a depthwise and a fully connected slice; gradients from tiny to many codes
 * (so the clamp to [-127, 127] is hit), sometimes a NaN or an infinity; the
 * rounding state 0 (the default seed) or any. Codes, zeroed gradients,
 * squared norm and final state must all be the same. */
static void test_sgd_s8(int case_no)
{
    const int32_t groups = rnd(1, 12), group = next() % 2u ? 1 : rnd(1, 9);
    const int32_t n = groups * group, stride = next() % 2u ? 1 : rnd(2, 9);
    const size_t nw = (size_t)(n - 1) * stride + 1;
    const float lr = (0.001f + 0.1f * (frand() + 1.0f)) * (next() % 4u ? 1.0f : 300.0f);
    const float *sc = w_scales(groups);
    int8_t *w_ref = s8buf(nw), *w = s8buf(nw);
    float *g_ref = fbuf((size_t)n), *g;
    uint32_t st_ref = next() % 4u ? next() : 0u, st = st_ref;
    float sq_ref, sq;
    int32_t i;
    for (i = 0; i < (int32_t)nw; ++i)
        if (w_ref[i] == -128)
            w_ref[i] = -127; /* symmetric codes */
    memcpy(w, w_ref, nw);
    if (next() % 8u == 0)
        g_ref[rnd(0, n - 1)] = next() % 2u ? NAN : frand() < 0.0f ? -INFINITY : INFINITY;
    g = fcopy(g_ref, (size_t)n);
    sq_ref = ref_sgd_s8(groups, group, w_ref, stride, sc, g_ref, lr, &st_ref);
    sq = mdy_sgd_slice_s8(groups, group, w, stride, sc, g, lr, &st);
    expect_same_s8("int8 sgd codes", case_no, w_ref, w, nw);
    expect_same("int8 sgd gradient zeroed", case_no, g_ref, g, (size_t)n);
    expect_same("int8 sgd squared norm", case_no, &sq_ref, &sq, 1);
    ++checks;
    if (st != st_ref) {
        ++failures;
        out("FAIL int8 sgd rounding state case ");
        out_int(case_no);
        out("\n");
    }
    release_all();
}

/* mdy_requantize_m7 against mdy_requantize on any int32 value (the extremes,
 * small ones of both signs), multiplier (the host's normalized ones in
 * [2^30, 2^31) with 2^30 itself, INT32_MIN, negative ones) and shift in
 * [-31, 30]. */
static void test_requantize_s8(int case_no)
{
    int k, bad = 0;
    for (k = 0; k < 256; ++k) {
        const uint32_t kind = next() % 8u;
        const int32_t v = k == 0 ? INT32_MIN : k == 1 ? INT32_MAX
                          : kind < 3 ? rnd(-4, 4) : kind < 5 ? rnd(-100000, 100000)
                                                  : (int32_t)next();
        const uint32_t mk = next() % 16u;
        const int32_t m = k == 2 || mk == 0 ? INT32_MIN : mk == 1 ? (int32_t)next()
                          : mk == 2 ? (1 << 30) : (int32_t)(0x40000000u | (next() & 0x3fffffffu));
        const int32_t s = next() % 4u ? rnd(-31, 0) : rnd(-31, 30);
        bad += mdy_requantize_m7(v, m, s) != mdy_requantize(v, m, s);
        bad += mdy_requantize_m7_r1(v, m, s) != mdy_requantize(v, m, s);
    }
    ++checks;
    if (bad) {
        ++failures;
        out("FAIL int8 requantization case ");
        out_int(case_no);
        out("\n");
    }
}

#ifdef MDY_BENCH
/* Instructions per MAC of the reference and the optimized kernel on the
 * shapes of bench/results/device_instr.md (QEMU -icount: one cycle = one
 * instruction). Printed as "BENCH name macs ref_instr opt_instr". */
static void bench_line(const char *name, long macs, uint64_t ref, uint64_t opt)
{
    out("BENCH ");
    out(name);
    out(" ");
    out_int(macs);
    out(" ");
    out_int((long)ref);
    out(" ");
    out_int((long)opt);
    out("\n");
}
#define TIME(var, call)                        \
    do {                                       \
        uint64_t t0_ = board_cycles();         \
        call;                                  \
        var = board_cycles() - t0_;            \
    } while (0)

static mdy_conv_params same_conv(int32_t c, int32_t hw, int32_t k, int dw)
{
    mdy_conv_params p;
    memset(&p, 0, sizeof p);
    p.in_c = p.out_c = c;
    p.in_h = p.in_w = p.out_h = p.out_w = hw;
    p.k_h = p.k_w = k;
    p.stride_h = p.stride_w = 1;
    p.pad_top = p.pad_left = k / 2;
    p.groups = dw ? c : 1;
    return p;
}

static void bench_conv(const char *name, int32_t c, int32_t hw, int32_t k, int dw)
{
    const mdy_conv_params p = same_conv(c, hw, k, dw);
    const size_t nx = (size_t)hw * hw * c, nw = (size_t)c * k * k * (dw ? 1 : c);
    const long macs = (long)hw * hw * c * k * k * (dw ? 1 : c);
    const int32_t n_sel = dw ? c : 8; /* every channel / 8 channels of a dense layer */
    const long wmacs = dw ? macs : macs / c * n_sel;
    float *x = fbuf(nx), *w = fbuf(nw), *b = fbuf((size_t)c), *y = fbuf(nx), *dy = fbuf(nx);
    float *dx = fbuf(nx), *maps = fbuf((size_t)n_sel * hw * hw);
    float *dws = fbuf((size_t)n_sel * c * k * k);
    uint16_t sel[64];
    uint64_t r, o;
    int32_t i;
    char label[48];
    for (i = 0; i < n_sel; ++i)
        sel[i] = (uint16_t)i;
    if (dw) {
        TIME(r, ref_dw(&p, x, w, b, y));
        TIME(o, mdy_depthwise_conv2d_nhwc_f32(&p, x, w, b, y));
        bench_line(strcat(strcpy(label, name), "/forward"), macs, r, o);
        TIME(r, ref_dw_igrad(&p, w, dy, dx, 0));
        TIME(o, mdy_depthwise_conv2d_nhwc_f32_igrad(&p, w, dy, dx, 0));
        bench_line(strcat(strcpy(label, name), "/input-grad"), macs, r, o);
        TIME(r, ref_dw_wgrad(&p, maps, sel, n_sel, dy, dws));
        TIME(o, mdy_depthwise_conv2d_nhwc_f32_wgrad(&p, maps, sel, n_sel, dy, dws));
        bench_line(strcat(strcpy(label, name), "/weight-grad"), wmacs, r, o);
    } else {
        TIME(r, ref_conv2d(&p, x, w, b, y));
        TIME(o, mdy_conv2d_nhwc_f32(&p, x, w, b, y));
        bench_line(strcat(strcpy(label, name), "/forward"), macs, r, o);
        TIME(r, ref_conv2d_igrad(&p, w, dy, dx, 0));
        TIME(o, mdy_conv2d_nhwc_f32_igrad(&p, w, dy, dx, 0));
        bench_line(strcat(strcpy(label, name), "/input-grad"), macs, r, o);
        TIME(r, ref_conv2d_wgrad(&p, maps, sel, n_sel, dy, dws));
        TIME(o, mdy_conv2d_nhwc_f32_wgrad(&p, maps, sel, n_sel, dy, dws));
        bench_line(strcat(strcpy(label, name), "/weight-grad"), wmacs, r, o);
    }
    release_all();
}

static void bench_fc(int32_t n)
{
    float *x = fbuf((size_t)n), *w = fbuf((size_t)n * n), *b = fbuf((size_t)n);
    float *y = fbuf((size_t)n), *dx = fbuf((size_t)n), *xv = fbuf((size_t)n);
    float *dws = fbuf((size_t)n * n);
    uint16_t sel[128];
    uint64_t r, o;
    int32_t i;
    for (i = 0; i < n; ++i)
        sel[i] = (uint16_t)i;
    TIME(r, ref_fc(n, n, x, w, b, y));
    TIME(o, mdy_fully_connected_f32(n, n, x, w, b, y));
    bench_line("fc128/forward", (long)n * n, r, o);
    TIME(r, ref_fc_igrad(n, n, w, y, dx, 0));
    TIME(o, mdy_fully_connected_f32_igrad(n, n, w, y, dx, 0));
    bench_line("fc128/input-grad", (long)n * n, r, o);
    TIME(r, ref_fc_wgrad(n, n, xv, sel, n, y, dws));
    TIME(o, mdy_fully_connected_f32_wgrad(n, n, xv, sel, n, y, dws));
    bench_line("fc128/weight-grad", (long)n * n, r, o);
    TIME(r, (void)ref_sgd(n * n / 4, dws, 1, w, 0.01f));
    TIME(o, (void)mdy_sgd_slice_f32(n * n / 4, dws, 1, w, 0.01f));
    bench_line("sgd4096/update", (long)n * n / 4, r, o); /* per updated weight */
    release_all();
}

/* The clamp (ReLU6 with its mask) and its input gradient, per element. */
static void bench_clamp(int32_t n)
{
    float *x = fbuf((size_t)n), *y = fbuf((size_t)n), *dx = fbuf((size_t)n);
    uint8_t *mask = (uint8_t *)alloc_bytes((size_t)(n + 7) / 8);
    uint64_t r, o;
    int32_t i;
    for (i = 0; i < n; ++i)
        x[i] *= 8.0f;
    TIME(r, ref_clamp(n, x, 0.0f, 6.0f, y, mask));
    TIME(o, mdy_clamp_f32(n, x, 0.0f, 6.0f, y, mask));
    bench_line("clamp2048/forward", (long)n, r, o);
    TIME(r, ref_clamp_igrad(n, mask, y, dx, 0));
    TIME(o, mdy_clamp_f32_igrad(n, mask, y, dx, 0));
    bench_line("clamp2048/input-grad", (long)n, r, o);
    release_all();
}

/* int8 forward kernels on the shapes of the published CMSIS-NN counts, with
 * quantization parameters of real layers (scale below 1, a ReLU clamp). */
static mdy_s8_conv_quant bench_quant(int32_t out_c)
{
    mdy_s8_conv_quant q = s8_quant(out_c);
    int32_t *shift = (int32_t *)q.shift;
    int32_t o;
    for (o = 0; o < out_c; ++o)
        shift[o] = -rnd(6, 10);
    q.x_zero = -3;
    q.y_zero = -128;
    q.act_min = -128;
    q.act_max = 127;
    return q;
}

static void bench_conv_s8(const char *name, int32_t in_c, int32_t out_c, int32_t hw, int32_t k,
                          int dw)
{
    mdy_conv_params p = same_conv(in_c, hw, k, dw);
    const size_t nx = (size_t)hw * hw * in_c, ny = (size_t)hw * hw * out_c;
    const size_t nw = (size_t)out_c * k * k * (dw ? 1 : in_c);
    const long macs = (long)hw * hw * out_c * k * k * (dw ? 1 : in_c);
    mdy_s8_conv_quant q;
    const int8_t *x, *w;
    int32_t *b;
    int8_t *y;
    uint64_t r, o;
    int32_t i;
    char label[48];
    p.out_c = out_c;
    q = bench_quant(out_c);
    x = s8buf(nx);
    w = s8buf(nw);
    y = s8buf(ny);
    b = (int32_t *)alloc_bytes((size_t)out_c * sizeof(int32_t));
    for (i = 0; i < out_c; ++i)
        b[i] = rnd(-2000, 2000);
    if (dw) {
        TIME(r, ref_dw_s8(&p, &q, x, w, b, y));
        TIME(o, mdy_depthwise_conv2d_nhwc_s8(&p, &q, x, w, b, y));
    } else {
        TIME(r, ref_conv2d_s8(&p, &q, x, w, b, y));
        TIME(o, mdy_conv2d_nhwc_s8(&p, &q, x, w, b, y));
    }
    bench_line(strcat(strcpy(label, name), "/forward"), macs, r, o);
    {   /* the backward: fp32 gradients through the int8 weights / from int8 maps */
        const int32_t n_sel = dw ? in_c : 8;
        const float *sc = w_scales(out_c), *dy = fbuf(ny);
        float *dx = fbuf(nx), *dws = fbuf((size_t)n_sel * (dw ? out_c / in_c : out_c) * k * k);
        const int8_t *maps = s8buf((size_t)n_sel * hw * hw);
        uint16_t sel[64];
        for (i = 0; i < n_sel; ++i)
            sel[i] = (uint16_t)i;
        if (dw) {
            TIME(r, ref_dw_s8_igrad(&p, w, sc, dy, dx, 0));
            TIME(o, mdy_depthwise_conv2d_nhwc_s8_igrad(&p, w, sc, dy, dx, 0));
            bench_line(strcat(strcpy(label, name), "/input-grad"), macs, r, o);
            TIME(r, ref_dw_s8_wgrad(&p, maps, -3, 0.05f, sel, n_sel, dy, dws));
            TIME(o, mdy_depthwise_conv2d_nhwc_s8_wgrad(&p, maps, -3, 0.05f, sel, n_sel, dy, dws));
            bench_line(strcat(strcpy(label, name), "/weight-grad"), macs, r, o);
        } else {
            TIME(r, ref_conv2d_s8_igrad(&p, w, sc, dy, dx, 0));
            TIME(o, mdy_conv2d_nhwc_s8_igrad(&p, w, sc, dy, dx, 0));
            bench_line(strcat(strcpy(label, name), "/input-grad"), macs, r, o);
            TIME(r, ref_conv2d_s8_wgrad(&p, maps, -3, 0.05f, sel, n_sel, dy, dws));
            TIME(o, mdy_conv2d_nhwc_s8_wgrad(&p, maps, -3, 0.05f, sel, n_sel, dy, dws));
            bench_line(strcat(strcpy(label, name), "/weight-grad"), macs / in_c * n_sel, r, o);
        }
    }
    release_all();
}

static void bench_fc_s8(int32_t n)
{
    const mdy_s8_conv_quant q = bench_quant(n);
    const int8_t *x = s8buf((size_t)n), *w = s8buf((size_t)n * n);
    int8_t *y = s8buf((size_t)n);
    int32_t *b = (int32_t *)alloc_bytes((size_t)n * sizeof(int32_t));
    uint64_t r, o;
    int32_t i;
    for (i = 0; i < n; ++i)
        b[i] = rnd(-2000, 2000);
    TIME(r, ref_fc_s8(n, n, &q, x, w, b, y));
    TIME(o, mdy_fully_connected_s8(n, n, &q, x, w, b, y));
    bench_line("fc128_s8/forward", (long)n * n, r, o);
    {   /* the backward: fp32 gradients through the int8 weights / from int8 inputs */
        const float *sc = w_scales(n * n / 4 / 9), *dy = fbuf((size_t)n);
        float *dx = fbuf((size_t)n), *dws = fbuf((size_t)n * n);
        uint16_t *sel = (uint16_t *)alloc_bytes((size_t)n * sizeof(uint16_t));
        int8_t *wc = s8buf((size_t)n * n / 4);
        float *g = fbuf((size_t)n * n / 4);
        uint32_t st = 1u;
        for (i = 0; i < n; ++i)
            sel[i] = (uint16_t)i;
        TIME(r, ref_fc_s8_igrad(n, n, w, sc, dy, dx, 0));
        TIME(o, mdy_fully_connected_s8_igrad(n, n, w, sc, dy, dx, 0));
        bench_line("fc128_s8/input-grad", (long)n * n, r, o);
        TIME(r, ref_fc_s8_wgrad(n, n, x, -3, 0.05f, sel, n, dy, dws));
        TIME(o, mdy_fully_connected_s8_wgrad(n, n, x, -3, 0.05f, sel, n, dy, dws));
        bench_line("fc128_s8/weight-grad", (long)n * n, r, o);
        /* a 3x3 depthwise layer's 4096 weights: 455 runs of 9 (+1), stride 1 */
        TIME(r, (void)ref_sgd_s8(n * n / 4 / 9, 9, wc, 1, sc, g, 0.01f, &st));
        TIME(o, (void)mdy_sgd_slice_s8(n * n / 4 / 9, 9, wc, 1, sc, g, 0.01f, &st));
        bench_line("sgd4095_s8/update", (long)(n * n / 4 / 9) * 9, r, o);
    }
    release_all();
}

/* The elementwise int8 kernels per element: an add quantized as real adds are
 * (one input rescaled by exactly 1/2, the other by a scale in [1/4, 1/2), the
 * output far below 1), and a table. */
static void bench_elementwise_s8(int32_t n)
{
    const int8_t *a = s8buf((size_t)n), *b = s8buf((size_t)n), *table = s8buf(256);
    int8_t *y = s8buf((size_t)n);
    mdy_s8_add_quant q;
    uint64_t r, o;
    q.a_zero = -3;
    q.b_zero = 5;
    q.y_zero = -2;
    add_scale(0, &q.a_multiplier, &q.a_shift);
    add_scale(1, &q.b_multiplier, &q.b_shift);
    add_scale(2, &q.y_multiplier, &q.y_shift);
    q.y_shift = -19;
    q.act_min = -128;
    q.act_max = 127;
    TIME(r, ref_add_s8(n, &q, a, b, y));
    TIME(o, mdy_add_s8(n, &q, a, b, y));
    bench_line("add4096_s8/forward", (long)n, r, o);
    TIME(r, ref_table_s8(n, table, a, y));
    TIME(o, mdy_table_s8(n, table, a, y));
    bench_line("table4096_s8/forward", (long)n, r, o);
    release_all();
}
#endif

int main(void)
{
    int i, cases = 0;
#ifdef MDY_ON_BOARD
    board_init();
#endif
    for (i = 0; i < 300; ++i, ++cases)
        test_conv(0, 0, cases);
    for (i = 0; i < 150; ++i, ++cases)
        test_conv(0, 1, cases);
    for (i = 0; i < 300; ++i, ++cases)
        test_conv(1, 0, cases);
    for (i = 0; i < 200; ++i, ++cases)
        test_fc(cases);
    for (i = 0; i < 100; ++i, ++cases)
        test_sgd(cases);
    for (i = 0; i < 300; ++i, ++cases)
        test_conv_s8(0, 0, cases);
    for (i = 0; i < 150; ++i, ++cases)
        test_conv_s8(0, 1, cases);
    for (i = 0; i < 300; ++i, ++cases)
        test_conv_s8(1, 0, cases);
    for (i = 0; i < 200; ++i, ++cases)
        test_fc_s8(cases);
    for (i = 0; i < 150; ++i, ++cases) {
        test_conv_s8_on(dw7_problem(), 1, 0, cases);
        test_conv_s8_backward_on(dw7_problem(), 1, 0, cases);
    }
    for (i = 0; i < 300; ++i, ++cases)
        test_conv_s8_backward(0, 0, cases);
    for (i = 0; i < 150; ++i, ++cases)
        test_conv_s8_backward(0, 1, cases);
    for (i = 0; i < 300; ++i, ++cases)
        test_conv_s8_backward(1, 0, cases);
    for (i = 0; i < 300; ++i, ++cases)
        test_clamp_mask_s8(cases);
    for (i = 0; i < 300; ++i, ++cases)
        test_add_s8(cases);
    for (i = 0; i < 100; ++i, ++cases)
        test_table_s8(cases);
    for (i = 0; i < 300; ++i, ++cases)
        test_clamp(cases);
    for (i = 0; i < 300; ++i, ++cases)
        test_clamp_igrad(cases);
    for (i = 0; i < 100; ++i, ++cases)
        test_requantize_s8(cases);
    for (i = 0; i < 200; ++i, ++cases)
        test_fc_s8_backward(cases);
    for (i = 0; i < 200; ++i, ++cases)
        test_sgd_s8(cases);
    for (i = 0; i < 100; ++i, ++cases) {
        /* the pointwise input gradient's float weights go 32 output channels
         * at a time: more than one chunk, a partial last one */
        mdy_conv_params p = conv_problem(0, 1);
        p.out_c = rnd(33, 100);
        test_conv_s8_backward_on(p, 0, 1, cases);
    }
    for (i = 0; i < 150; ++i, ++cases) {
        /* the pointwise rows in assembly on the M7: whole words of input
         * channels and the whole int8 range as clamp; up to 128 channels the
         * weights pre-widened, above widened on the fly */
        mdy_conv_params p = conv_problem(0, 1);
        p.in_c = next() % 4u ? 4 * rnd(1, 12) : 4 * rnd(30, 36);
        s8_full_clamp = 1;
        test_conv_s8_on(p, 0, 1, cases);
        s8_full_clamp = 0;
    }
    for (i = 0; i < 100; ++i, ++cases) {
        /* the general conv's runs of windows inside the map in assembly on
         * the M7 (rows padded to whole words): an RGB input layer's 3 x 3,
         * stride 1 or 2, 1 to 4 input channels, the whole int8 range */
        mdy_conv_params p = conv_problem(0, 0);
        p.k_h = p.k_w = 3;
        p.stride_h = p.stride_w = rnd(1, 2);
        p.pad_top = p.pad_left = 1;
        p.in_h = rnd(3, 9);
        p.in_w = rnd(3, 12);
        p.in_c = rnd(1, 4);
        p.out_h = (p.in_h + 2 - 3) / p.stride_h + 1;
        p.out_w = (p.in_w + 2 - 3) / p.stride_w + 1;
        s8_full_clamp = 1;
        test_conv_s8_on(p, 0, 0, cases);
        s8_full_clamp = 0;
    }
    for (i = 0; i < 150; ++i, ++cases) {
        /* the int8 depthwise 3x3 planes with a padding of 1 on the left (their
         * border windows unrolled, the zero point folded for the whole int8
         * range), stride 1 or 2, any bottom and right padding, maps of one
         * or two rows or columns, groups of 4 channels and a remainder */
        mdy_conv_params p = conv_problem(1, 0);
        int32_t pb = rnd(0, 2), pr = rnd(0, 2);
        p.k_h = p.k_w = 3;
        p.stride_h = p.stride_w = rnd(1, 2);
        p.pad_top = next() % 4u ? 1 : rnd(0, 2);
        p.pad_left = 1;
        p.in_h = rnd(1, 10);
        p.in_w = rnd(1, 12);
        if (p.in_h + p.pad_top + pb < 3)
            pb = 3 - p.in_h - p.pad_top;
        if (p.in_w + 1 + pr < 3)
            pr = 2 - p.in_w;
        p.out_h = (p.in_h + p.pad_top + pb - 3) / p.stride_h + 1;
        p.out_w = (p.in_w + 1 + pr - 3) / p.stride_w + 1;
        p.in_c = p.out_c = p.groups = 4 * rnd(1, 4) + (next() % 4u ? 0 : rnd(1, 3));
        s8_full_clamp = (int)(next() % 2u);
        test_conv_s8_on(p, 1, 0, cases);
        s8_full_clamp = 0;
    }
    for (i = 0; i < 150; ++i, ++cases) {
        /* the int8 depthwise input gradient's edge windows for 5 and 7 wide
         * kernels: stride 1 across the row, a "same" padding on the left, the
         * right or both (the windows' variants), maps 1 to 18 wide, a
         * remainder channel */
        mdy_conv_params p = conv_problem(1, 0);
        const int32_t k = next() % 2u ? 5 : 7, e = (k - 1) / 2;
        int32_t pb = rnd(0, k - 1), pr = next() % 4u ? e : rnd(0, k - 1);
        p.k_h = p.k_w = k;
        p.stride_w = 1;
        p.stride_h = rnd(1, 2);
        p.pad_top = rnd(0, k - 1);
        p.pad_left = next() % 4u ? e : rnd(0, k - 1);
        p.in_h = rnd(1, 9);
        p.in_w = rnd(1, 18);
        if (p.in_h + p.pad_top + pb < k)
            pb = k - p.in_h - p.pad_top;
        if (p.in_w + p.pad_left + pr < k)
            pr = k - p.in_w - p.pad_left;
        p.out_h = (p.in_h + p.pad_top + pb - k) / p.stride_h + 1;
        p.out_w = p.in_w + p.pad_left + pr - k + 1;
        p.in_c = p.out_c = p.groups = 2 * rnd(1, 6) + (next() % 4u ? 0 : 1);
        test_conv_s8_backward_on(p, 1, 0, cases);
    }
#ifdef MDY_BENCH
    bench_conv("pointwise32x8x8", 32, 8, 1, 0);
    bench_conv("dense3x3_16x8x8", 16, 8, 3, 0);
    bench_conv("depthwise3x3_32x8x8", 32, 8, 3, 1);
    bench_fc(128);
    bench_clamp(2048);
    bench_conv_s8("pointwise32x8x8_s8", 32, 32, 8, 1, 0);
    bench_conv_s8("pointwise16to96x14x14_s8", 16, 96, 14, 1, 0);
    bench_conv_s8("dense3x3_16x8x8_s8", 16, 16, 8, 3, 0);
    bench_conv_s8("depthwise3x3_32x8x8_s8", 32, 32, 8, 3, 1);
    bench_conv_s8("depthwise7x7_64x8x8_s8", 64, 64, 8, 7, 1);
    bench_fc_s8(128);
    bench_elementwise_s8(4096);
#endif
    out_int(checks);
    out(" checks, ");
    out_int(failures);
    out(" failures\n");
#ifdef MDY_ON_BOARD
    board_exit(failures ? 1 : 0);
#else
    return failures ? 1 : 0;
#endif
}
