/*
 * Instruction counts of the int8 reference kernels against the fp32 reference
 * kernels on the Cortex-M7 (QEMU mps2-an500, -icount shift=0: the board's
 * cycle counter counts instructions, resolution 40), on the shapes of the
 * published CMSIS-NN instruction counts the project compares against
 * (README of bench/results/int8_kernels.md). Prints one line per case,
 *   CASE name macs fp32_instructions s8_instructions
 * then exits 0. Inputs are deterministic pseudo-random values; the counts do
 * not depend on them (no data-dependent branches in these loops).
 */
#include <stdint.h>
#include <stddef.h>

#include "mdy_board.h"
#include "medyate.h"

#define MAX_X (14 * 14 * 16)
#define MAX_Y (14 * 14 * 96)
#define MAX_W (128 * 128)

static float xf[MAX_X], yf[MAX_Y], wf[MAX_W], bf[128];
static int8_t x8[MAX_X], y8[MAX_Y], w8[MAX_W];
static int32_t b32[128], mult[128], shift[128];

static void put(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    board_uart_write((const uint8_t *)s, n);
}

static void put_u64(uint64_t v)
{
    char buf[24];
    int i = (int)sizeof buf;
    buf[--i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    put(&buf[i]);
}

static void fill(void)
{
    uint32_t s = 1u;
    int i;
    for (i = 0; i < MAX_X; ++i) {
        s = s * 1664525u + 1013904223u;
        x8[i] = (int8_t)(s >> 24);
        xf[i] = (float)x8[i] * 0.01f;
    }
    for (i = 0; i < MAX_W; ++i) {
        s = s * 1664525u + 1013904223u;
        w8[i] = (int8_t)(s >> 24);
        wf[i] = (float)w8[i] * 0.01f;
    }
    for (i = 0; i < 128; ++i) {
        b32[i] = i * 37 - 2000;
        bf[i] = (float)b32[i] * 1e-4f;
        mult[i] = 1518500250 + i;
        shift[i] = -9;
    }
}

static void report(const char *name, uint64_t macs, uint64_t f, uint64_t q)
{
    put("CASE ");
    put(name);
    put(" ");
    put_u64(macs);
    put(" ");
    put_u64(f);
    put(" ");
    put_u64(q);
    put("\n");
}

static void conv_case(const char *name, int32_t hw, int32_t cin, int32_t cout, int32_t k,
                      int dw)
{
    mdy_conv_params p;
    mdy_s8_conv_quant q;
    uint64_t t0, t1, t2;
    p.in_h = p.in_w = p.out_h = p.out_w = hw;
    p.in_c = cin;
    p.out_c = cout;
    p.k_h = p.k_w = k;
    p.stride_h = p.stride_w = 1;
    p.pad_top = p.pad_left = (k - 1) / 2;
    p.groups = dw ? cin : 1;
    q.x_zero = -3;
    q.y_zero = 5;
    q.act_min = -128;
    q.act_max = 127;
    q.multiplier = mult;
    q.shift = shift;
    t0 = board_cycles();
    if (dw)
        mdy_depthwise_conv2d_nhwc_f32(&p, xf, wf, bf, yf);
    else
        mdy_conv2d_nhwc_f32(&p, xf, wf, bf, yf);
    t1 = board_cycles();
    if (dw)
        mdy_depthwise_conv2d_nhwc_s8(&p, &q, x8, w8, b32, y8);
    else
        mdy_conv2d_nhwc_s8(&p, &q, x8, w8, b32, y8);
    t2 = board_cycles();
    report(name, (uint64_t)hw * hw * cout * k * k * (dw ? 1 : cin), t1 - t0, t2 - t1);
}

static void fc_case(const char *name, int32_t n_in, int32_t n_out)
{
    mdy_s8_conv_quant q;
    uint64_t t0, t1, t2;
    q.x_zero = -3;
    q.y_zero = 5;
    q.act_min = -128;
    q.act_max = 127;
    q.multiplier = mult;
    q.shift = shift;
    t0 = board_cycles();
    mdy_fully_connected_f32(n_in, n_out, xf, wf, bf, yf);
    t1 = board_cycles();
    mdy_fully_connected_s8(n_in, n_out, &q, x8, w8, b32, y8);
    t2 = board_cycles();
    report(name, (uint64_t)n_in * n_out, t1 - t0, t2 - t1);
}

static void wgrad_case(const char *name, int32_t hw, int32_t c)
{
    /* 1x1 weight gradient, every channel selected: fp32 maps vs int8 maps */
    mdy_conv_params p;
    static uint16_t sel[128];
    uint64_t t0, t1, t2;
    int32_t i;
    p.in_h = p.in_w = p.out_h = p.out_w = hw;
    p.in_c = p.out_c = c;
    p.k_h = p.k_w = 1;
    p.stride_h = p.stride_w = 1;
    p.pad_top = p.pad_left = 0;
    p.groups = 1;
    for (i = 0; i < c; ++i)
        sel[i] = (uint16_t)i;
    t0 = board_cycles();
    mdy_conv2d_nhwc_f32_wgrad(&p, xf, sel, c, yf, wf);
    t1 = board_cycles();
    mdy_conv2d_nhwc_s8_wgrad(&p, x8, -3, 0.02f, sel, c, yf, wf);
    t2 = board_cycles();
    report(name, (uint64_t)hw * hw * c * c, t1 - t0, t2 - t1);
}

int main(void)
{
    board_init();
    fill();
    put("HELLO int8-kernels\n");
    conv_case("pointwise_32to32_8x8", 8, 32, 32, 1, 0);
    conv_case("pointwise_16to96_14x14", 14, 16, 96, 1, 0);
    conv_case("dense3x3_16to16_8x8", 8, 16, 16, 3, 0);
    conv_case("depthwise3x3_32_8x8", 8, 32, 32, 3, 1);
    fc_case("fully_connected_128to128", 128, 128);
    wgrad_case("wgrad1x1_32to32_8x8", 8, 32);
    put("DONE\n");
    board_exit(0);
}
