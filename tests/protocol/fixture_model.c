/*
 * A tiny planned model for the protocol tests, written by hand:
 *
 *   input 4x4x2 -> conv 3x3 (pad 1) 4x4x4 -> ReLU -> global average pool 4
 *   -> fully connected 3 (logits)
 *
 * Trainable layers: 0 = the conv (2 input channels, slice 4*3*3 = 36, map
 * 4*4 = 16, bias frozen), 1 = the FC (4 input channels, slice 3, map 1, bias
 * trained). Channel pool: 100 elements, so all 6 channels (cost 120) do not
 * fit, and at most 5 channels fit (4 FC + 1 conv: 68).
 *
 * Arena (bytes, 16-aligned, no reuse):
 *      0 t1 conv out (64 f)      256 t2 relu out (64 f)   512 t3 gap out (4 f)
 *    528 t4 logits (3 f)         544 d t4                 560 d t3
 *    576 d t2 (64 f)             832 d t1 (64 f)         1088 relu mask (64 bits)
 *   1104 (unused)               1120 FC bias grad (3 f)  1136 pool (100 f = 400)
 *   1536 stats (5 f)            1568 selection (5 x 2 x u16)   1600 end
 */
#include <math.h>

#include "mdy_generated.h"

const char mdy_generated_name[] = "fixture-conv-gap-fc";

uint8_t mdy_generated_arena[1600] __attribute__((aligned(16)));

static float w0[72] = {
    0.000492f, 0.119498f, -0.109655f, -0.356237f, -0.181868f, -0.396659f, 0.024057f,
    0.536086f, -0.196883f, -0.248190f, 0.195937f, 0.142755f, 0.042166f, -0.372187f,
    -0.011701f, 0.278121f, -0.537686f, -0.183046f, -0.760489f, -0.515815f, -0.736694f,
    -0.094036f, -0.506979f, 0.108506f, 0.062700f, -0.074772f, -1.006704f, -0.215477f,
    -0.019400f, 0.045324f, -0.612054f, -0.191101f, -0.391408f, -0.323535f, 0.424359f,
    -0.323014f, -0.013009f, 0.353756f, -0.233440f, -0.044681f, 0.044186f, 0.025513f,
    -0.490022f, 0.030456f, 0.543529f, -0.618858f, 0.343753f, 0.047742f, -0.256588f,
    0.800167f, 0.304904f, -0.479716f, 0.029806f, 0.230676f, -0.075513f, 0.273164f,
    -0.026607f, 0.266899f, 0.575409f, -0.270265f, 0.081255f, -0.185323f, 0.050907f,
    -0.474878f, -0.231721f, -0.078478f, 0.359506f, 0.458089f, -0.529411f, -0.317857f,
    0.258761f, -0.796968f
};
static float b0[4] = {-0.046317f, -0.009729f, 0.125702f, 0.068940f};
static float w1[12] = {
    -0.163607f, -0.184288f, -0.125098f, 0.761765f, -0.214012f, -0.151840f, 0.176295f,
    -0.060385f, -0.098642f, -0.557034f, -0.005761f, -0.221791f
};
static float b1[3] = {0.0f, 0.0f, 0.0f};

static const mdy_tensor tensors[5] = {
    {MDY_NO_OFFSET, MDY_NO_OFFSET, 4, 4, 2, MDY_F32, 0.0f, 0},  /* t0 input: outside the arena */
    {0, 832, 4, 4, 4, MDY_F32, 0.0f, 0},
    {256, 576, 4, 4, 4, MDY_F32, 0.0f, 0},
    {512, 560, 1, 1, 4, MDY_F32, 0.0f, 0},
    {528, 544, 1, 1, 3, MDY_F32, 0.0f, 0},
};

static const mdy_op ops[4] = {
    {.kind = MDY_OP_CONV2D, .input = {0, MDY_NONE}, .output = 1, .layer = 0,
     .saved_offset = MDY_NO_OFFSET, .scratch_offset = MDY_NO_OFFSET,
     .p.conv = {4, 4, 2, 4, 4, 4, 3, 3, 1, 1, 1, 1, 1}, .weight = w0, .bias = b0},
    {.kind = MDY_OP_CLAMP, .input = {1, MDY_NONE}, .output = 2, .layer = MDY_NONE,
     .saved_offset = 1088, .scratch_offset = MDY_NO_OFFSET,
     .p.clamp = {0.0f, INFINITY}},
    {.kind = MDY_OP_GLOBAL_AVGPOOL, .input = {2, MDY_NONE}, .output = 3, .layer = MDY_NONE,
     .saved_offset = MDY_NO_OFFSET, .scratch_offset = MDY_NO_OFFSET},
    {.kind = MDY_OP_FULLY_CONNECTED, .input = {3, MDY_NONE}, .output = 4, .layer = 1,
     .saved_offset = MDY_NO_OFFSET, .scratch_offset = MDY_NO_OFFSET,
     .p.conv = {1, 1, 4, 1, 1, 3, 1, 1, 1, 1, 0, 0, 1}, .weight = w1, .bias = b1},
};

static const mdy_layer layers[2] = {
    {.op = 0, .train_bias = 0, .channels = 2, .slice_size = 36, .map_size = 16, .map_words = 16,
     .weight = w0, .bias = b0, .bias_grad_offset = MDY_NO_OFFSET},
    {.op = 3, .train_bias = 1, .channels = 4, .slice_size = 3, .map_size = 1, .map_words = 1,
     .weight = w1, .bias = b1, .bias_grad_offset = 1120},
};

const mdy_model mdy_generated_model = {
    .hash = 0x5EED0001u,
    .n_ops = 4, .n_tensors = 5, .n_layers = 2,
    .input = 0, .output = 4,
    .classes = 3,
    .ops = ops, .tensors = tensors, .layers = layers,
    .arena_size = 1600,
    .pool_offset = 1136, .pool_size = 400,
    .max_selected = 5,
    .stats_offset = 1536,
    .sel_offset = 1568,
};
