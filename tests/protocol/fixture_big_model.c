/*
 * A second hand-written model for the protocol tests, whose input (16x16x3
 * floats, 3072 bytes) is larger than one frame's payload, so a streamed
 * sample takes several frames:
 *
 *   input 16x16x3 -> conv 4x4 stride 4 (frozen) 4x4x2 -> global average pool 2
 *   -> fully connected 3 (logits)
 *
 * The strided conv makes the logits depend on where every value of the
 * sample lands, so a misplaced chunk shows. Trainable layer 0 = the FC (2
 * input channels, slice 3, map 1, bias trained). Channel pool: 8 elements,
 * both channels (4 each).
 *
 * Arena (bytes, 16-aligned, no reuse):
 *      0 t1 conv out (32 f)    128 t2 gap out (2 f)    144 t3 logits (3 f)
 *    160 d t3 (3 f)            176 FC bias grad (3 f)  192 pool (8 f = 32)
 *    224 stats (2 f)           240 selection (2 x 2 x u16)   256 end
 */
#include <math.h>

#include "mdy_generated.h"

const char mdy_generated_name[] = "fixture-big-input";

uint8_t mdy_generated_arena[256] __attribute__((aligned(16)));

static float w0[96] = {
    0.612276f, -0.766699f, 0.125430f, -0.170331f, -0.135795f, -0.064679f, -0.605996f,
    -0.069580f, -0.259564f, 0.996900f, 0.067736f, -0.105789f, -0.084386f, -0.200414f,
    -0.316545f, -0.117240f, 0.144584f, -0.071566f, 0.287328f, -0.059941f, 0.007278f,
    0.463746f, 0.163532f, -0.151569f, -0.054852f, 0.162158f, 0.580526f, -0.080886f,
    -0.073068f, 0.300694f, -0.265938f, -0.087516f, 0.264762f, 0.174105f, 0.027455f,
    0.201031f, -0.848449f, 0.306392f, -0.287893f, -0.500586f, 0.082934f, 0.210163f,
    -0.133430f, -0.322922f, 0.007837f, -0.015824f, 0.421679f, 0.224222f, 0.058145f,
    0.333490f, -0.061657f, -0.277770f, 0.175217f, 0.174762f, -0.064449f, -0.234843f,
    0.068746f, -0.748168f, 0.207037f, 0.147410f, -0.491657f, 0.018406f, -0.289230f,
    0.227166f, -0.610250f, -0.274348f, 0.212874f, 0.346920f, -0.647402f, -0.149412f,
    0.098406f, -0.182765f, 0.477192f, -0.357368f, 0.106360f, -0.314522f, 0.421789f,
    -0.006495f, -0.111675f, -0.515455f, 0.504548f, 0.225834f, 0.226069f, 0.341364f,
    0.104768f, -0.191774f, -0.240072f, -0.240060f, 0.411022f, -0.438114f, -0.178911f,
    -0.096373f, 0.067386f, 0.172605f, -0.374729f, -0.519004f
};
static float b0[2] = {0.050000f, -0.050000f};
static float w1[6] = {-0.002207f, 0.606782f, 0.378529f, 0.107825f, -0.158578f, 0.146617f};
static float b1[3] = {0.0f, 0.0f, 0.0f};

static const mdy_tensor tensors[4] = {
    {MDY_NO_OFFSET, MDY_NO_OFFSET, 16, 16, 3, MDY_F32, 0.0f, 0},  /* t0 input: outside the arena */
    {0, MDY_NO_OFFSET, 4, 4, 2, MDY_F32, 0.0f, 0},
    {128, MDY_NO_OFFSET, 1, 1, 2, MDY_F32, 0.0f, 0},
    {144, 160, 1, 1, 3, MDY_F32, 0.0f, 0},
};

static const mdy_op ops[3] = {
    {.kind = MDY_OP_CONV2D, .input = {0, MDY_NONE}, .output = 1, .layer = MDY_NONE,
     .saved_offset = MDY_NO_OFFSET, .scratch_offset = MDY_NO_OFFSET,
     .p.conv = {16, 16, 3, 4, 4, 2, 4, 4, 4, 4, 0, 0, 1}, .weight = w0, .bias = b0},
    {.kind = MDY_OP_GLOBAL_AVGPOOL, .input = {1, MDY_NONE}, .output = 2, .layer = MDY_NONE,
     .saved_offset = MDY_NO_OFFSET, .scratch_offset = MDY_NO_OFFSET},
    {.kind = MDY_OP_FULLY_CONNECTED, .input = {2, MDY_NONE}, .output = 3, .layer = 0,
     .saved_offset = MDY_NO_OFFSET, .scratch_offset = MDY_NO_OFFSET,
     .p.conv = {1, 1, 2, 1, 1, 3, 1, 1, 1, 1, 0, 0, 1}, .weight = w1, .bias = b1},
};

static const mdy_layer layers[1] = {
    {.op = 2, .train_bias = 1, .channels = 2, .slice_size = 3, .map_size = 1, .map_words = 1,
     .weight = w1, .bias = b1, .bias_grad_offset = 176},
};

const mdy_model mdy_generated_model = {
    .hash = 0x5EED0002u,
    .n_ops = 3, .n_tensors = 4, .n_layers = 1,
    .input = 0, .output = 3,
    .classes = 3,
    .ops = ops, .tensors = tensors, .layers = layers,
    .arena_size = 256,
    .pool_offset = 192, .pool_size = 32,
    .max_selected = 2,
    .stats_offset = 224,
    .sel_offset = 240,
};
