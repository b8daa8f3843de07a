/*
 * medyate.h: the one public header of the medyate training engine.
 *
 * Layering (what may call what):
 *   kernels  (firmware/src/kernels/reference/<type>/, replaced file by file
 *             by a selected optimized folder)  pure math on caller memory, no state
 *   runtime  (firmware/src/runtime/)         executes a planned model: forward,
 *                                            sparse backward, SGD, statistics
 *   device   (firmware/src/device/, boards/) serial protocol + board glue
 * The host package fills the same descriptors through cffi that codegen emits
 * as C initialisers, so one runtime serves the host, QEMU and the board.
 *
 * Conventions
 *   - Activations are NHWC with batch 1 (training is per sample with gradient
 *     accumulation), fp32 or int8 codes per tensor (`mdy_tensor.dtype`); the
 *     `*_s8` kernels sit beside the `*_f32` ones and gradients are always fp32.
 *   - Conv weights are OHWI: [out_c][k_h][k_w][in_c / groups] (CMSIS-NN layout).
 *   - Input-gradient kernels take `accumulate`: 0 overwrites dx, 1 adds to it
 *     (a tensor consumed by several ops sums their contributions).
 *   - Saved input maps of trained channels are channel-planar: map c is H*W
 *     contiguous values (floats, or int8 codes on the int8 path), so one
 *     channel's map is one contiguous block.
 *   - A weight-gradient "slice" of input channel c is W[:, c] for a dense conv
 *     ([out_c][k_h][k_w] floats) and W[c*m .. c*m+m-1] for a depthwise conv with
 *     channel multiplier m ([m][k_h][k_w] floats).
 *   - No malloc anywhere; every buffer comes from the caller.
 */
#ifndef MEDYATE_H
#define MEDYATE_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MDY_ENGINE_VERSION 1

/* ---------------------------------------------------------------- status */
typedef enum {
    MDY_OK = 0,
    MDY_ERR_ARG = -1,          /* null pointer, bad size */
    MDY_ERR_RANGE = -2,        /* layer or channel index out of range */
    MDY_ERR_ORDER = -3,        /* selection not strictly increasing (duplicates) */
    MDY_ERR_BUDGET = -4,       /* selection does not fit the planned pool */
    MDY_ERR_UNSUPPORTED = -5,  /* op kind or parameter not supported */
    MDY_ERR_LABEL = -6         /* label outside [0, classes) */
} mdy_status;

/* ------------------------------------------------------------ parameters */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;    /* bottom/right padding follows from out_h/out_w */
    int32_t groups;               /* 1: dense; in_c: depthwise (out_c = m * in_c) */
} mdy_conv_params;

typedef struct {
    int32_t in_h, in_w, c;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t count_include_pad;    /* AveragePool only; ONNX default 0 */
} mdy_pool_params;

/* ------------------------------------------------------------ fp32 kernels
 * One kernel per file under firmware/src/kernels/reference/fp32/, named
 * op_layout_type; an optimized folder may replace a file (engine_build.py).
 * None of the fp32 kernels needs scratch today; the *_get_buffer_size twins
 * exist so that the planner sizes memory through one interface for all
 * kernels, including future int8/optimised ones that do need scratch.
 */

/* Conv 2D, groups == 1 (general and pointwise). */
void mdy_conv2d_nhwc_f32(const mdy_conv_params *p, const float *x,
                         const float *w, const float *bias, float *y);
int32_t mdy_conv2d_nhwc_f32_get_buffer_size(const mdy_conv_params *p);
/* dx = conv_transpose(dy, w). */
void mdy_conv2d_nhwc_f32_igrad(const mdy_conv_params *p, const float *w,
                               const float *dy, float *dx, int accumulate);
/* Sparse weight gradient: for k in [0, n_sel): dw_slices[k] += dW[:, sel[k]],
 * computed from x_maps[k], the saved channel-planar input map of sel[k].
 * Always accumulates (mini-batch accumulation). Cost: n_sel * out_c*k_h*k_w*out_h*out_w MACs. */
void mdy_conv2d_nhwc_f32_wgrad(const mdy_conv_params *p, const float *x_maps,
                               const uint16_t *sel, int32_t n_sel,
                               const float *dy, float *dw_slices);

/* Depthwise conv 2D, groups == in_c, channel multiplier m = out_c / in_c. */
void mdy_depthwise_conv2d_nhwc_f32(const mdy_conv_params *p, const float *x,
                                   const float *w, const float *bias, float *y);
int32_t mdy_depthwise_conv2d_nhwc_f32_get_buffer_size(const mdy_conv_params *p);
void mdy_depthwise_conv2d_nhwc_f32_igrad(const mdy_conv_params *p, const float *w,
                                         const float *dy, float *dx, int accumulate);
void mdy_depthwise_conv2d_nhwc_f32_wgrad(const mdy_conv_params *p, const float *x_maps,
                                         const uint16_t *sel, int32_t n_sel,
                                         const float *dy, float *dw_slices);

/* Bias gradient of any conv / fully connected layer: db[o] += sum_hw dy[hw][o]. */
void mdy_bias_grad_nhwc_f32(int32_t hw, int32_t c, const float *dy, float *db);

/* Fully connected: y[o] = sum_i w[o][i] x[i] + b[o]  (a 1x1 conv on a 1x1 map). */
void mdy_fully_connected_f32(int32_t in_features, int32_t out_features,
                             const float *x, const float *w, const float *bias, float *y);
void mdy_fully_connected_f32_igrad(int32_t in_features, int32_t out_features,
                                   const float *w, const float *dy, float *dx, int accumulate);
/* dw_slices[k][o] += dy[o] * x_vals[k], x_vals[k] = saved x[sel[k]]. */
void mdy_fully_connected_f32_wgrad(int32_t in_features, int32_t out_features,
                                   const float *x_vals, const uint16_t *sel, int32_t n_sel,
                                   const float *dy, float *dw_slices);

/* Clamp (ReLU = [0, +inf), ReLU6 = [0, 6], Clip): y = min(max(x, lo), hi).
 * mask (optional, may be NULL) gets bit i set where lo < x[i] < hi, i.e. where
 * the derivative is 1: one bit per element is all backward needs.
 * x and y may alias (in place). */
void mdy_clamp_f32(int32_t n, const float *x, float lo, float hi, float *y, uint8_t *mask);
void mdy_clamp_f32_igrad(int32_t n, const uint8_t *mask, const float *dy, float *dx, int accumulate);

/* HardSigmoid: y = clamp(alpha*x + beta, 0, 1); mask bit = linear region. In place ok. */
void mdy_hardsigmoid_f32(int32_t n, const float *x, float alpha, float beta, float *y, uint8_t *mask);
void mdy_hardsigmoid_f32_igrad(int32_t n, const uint8_t *mask, float alpha,
                               const float *dy, float *dx, int accumulate);

/* HardSwish: y = x * clamp(x/6 + 1/2, 0, 1). Backward needs x itself (saved copy). */
void mdy_hardswish_f32(int32_t n, const float *x, float *y);
void mdy_hardswish_f32_igrad(int32_t n, const float *x, const float *dy, float *dx, int accumulate);

/* Elementwise add (residual). Backward is a copy/accumulate of dy: mdy_add_f32_igrad. */
void mdy_add_f32(int32_t n, const float *a, const float *b, float *y);
void mdy_add_f32_igrad(int32_t n, const float *dy, float *dx, int accumulate);

/* Per-channel multiply (squeeze-excite): y[hw][c] = x[hw][c] * s[c]. */
void mdy_mul_channel_nhwc_f32(int32_t hw, int32_t c, const float *x, const float *s, float *y);
/* dx = dy * s. */
void mdy_mul_channel_nhwc_f32_igrad_x(int32_t hw, int32_t c, const float *s,
                                      const float *dy, float *dx, int accumulate);
/* ds[c] = sum_hw dy * x. */
void mdy_mul_channel_nhwc_f32_igrad_s(int32_t hw, int32_t c, const float *x,
                                      const float *dy, float *ds, int accumulate);

/* Global average pool: [h][w][c] -> [c]. */
void mdy_global_avgpool_nhwc_f32(int32_t h, int32_t w, int32_t c, const float *x, float *y);
void mdy_global_avgpool_nhwc_f32_igrad(int32_t h, int32_t w, int32_t c,
                                       const float *dy, float *dx, int accumulate);

/* Average pool. */
void mdy_avgpool_nhwc_f32(const mdy_pool_params *p, const float *x, float *y);
void mdy_avgpool_nhwc_f32_igrad(const mdy_pool_params *p, const float *dy, float *dx, int accumulate);

/* Max pool. mask (optional, mdy_maxpool_nhwc_f32_mask_bytes(p) bytes): per
 * *output* element, the window position (kh*k_w + kw) of its first maximum,
 * packed in ceil(log2(k_h*k_w)) bits, so backward routes dy there without
 * saving x. (One bit per input element cannot tell overlapping windows apart.) */
void mdy_maxpool_nhwc_f32(const mdy_pool_params *p, const float *x, float *y, uint8_t *mask);
int32_t mdy_maxpool_nhwc_f32_mask_bytes(const mdy_pool_params *p);
void mdy_maxpool_nhwc_f32_igrad(const mdy_pool_params *p, const uint8_t *mask,
                                const float *dy, float *dx, int accumulate);

/* Concat along channels: y[hw] = [a[hw] (ca) | b[hw] (cb)]. */
void mdy_concat_channels_nhwc_f32(int32_t hw, int32_t ca, int32_t cb,
                                  const float *a, const float *b, float *y);
/* part 0 gives da, part 1 gives db. */
void mdy_concat_channels_nhwc_f32_igrad(int32_t hw, int32_t ca, int32_t cb, int32_t part,
                                        const float *dy, float *dx, int accumulate);

/* Softmax (inference output). */
void mdy_softmax_f32(int32_t n, const float *x, float *y);
/* Softmax cross-entropy of one sample: returns the loss, writes
 * dlogits = scale * (softmax(logits) - onehot(label)) (scale = 1/batch)
 * unless dlogits is NULL (loss only, as evaluation needs). */
float mdy_softmax_xent_f32(int32_t n, const float *logits, int32_t label,
                           float scale, float *dlogits);

/* SGD without momentum on one weight-gradient slice: w[i*stride] -= lr * g[i]
 * for i < n, then g[i] = 0 (the slice is ready for the next mini-batch).
 * Returns sum g[i]^2 before the update (channel-importance statistic). */
float mdy_sgd_slice_f32(int32_t n, float *w, int32_t stride, float *g, float lr);

/* ------------------------------------------------------------ int8 kernels
 * One kernel per file under firmware/src/kernels/reference/int8/, named
 * op_layout_s8. Integer semantics follow CMSIS-NN / TFLite (docs/ARCHITECTURE.md,
 * "int8 arithmetic"):
 *   - a tensor's real value is scale * (code - zero), code int8, zero in [-128, 127];
 *     weights are symmetric (zero 0) with one scale per output channel; bias int32
 *     with scale x_scale * w_scale[o] and zero 0;
 *   - an accumulator is brought to the output scale by mdy_requantize
 *     (kernels/reference/int8/mdy_requantize.h): a Q31 multiplier and a power-of-two
 *     shift, both computed on the host by medyate.planner.quant.quantize_multiplier;
 *   - act_min/act_max clamp the output codes: [-128, 127] alone, or the fused
 *     ReLU/ReLU6/Clip expressed in output codes;
 *   - the caller guarantees that accumulators fit in int32 (|bias| + taps *
 *     (128 + |x_zero|) * 128 < 2^31; medyate.planner.quant.check_accumulator checks it).
 * Padding in a conv or average pool is real 0, i.e. the input zero point.
 */
#define MDY_S8_ADD_LEFT_SHIFT 20  /* bits of headroom before the add's input rescale (TFLite's 20) */

/* Conv / depthwise conv / fully connected: per-output-channel requantization. */
typedef struct {
    int32_t x_zero;               /* input zero point */
    int32_t y_zero;               /* output zero point */
    int32_t act_min, act_max;     /* output clamp, in output codes */
    const int32_t *multiplier;    /* [out_c]: Q31 of x_scale * w_scale[o] / y_scale */
    const int32_t *shift;         /* [out_c]: its power-of-two exponent */
} mdy_s8_conv_quant;

/* One int8 tensor to another: y = clamp(y_zero + (x - x_zero) * x_scale / y_scale). */
typedef struct {
    int32_t x_zero, y_zero;
    int32_t multiplier, shift;    /* x_scale / y_scale */
    int32_t act_min, act_max;
} mdy_s8_rescale;

/* Residual add, TFLite's scheme: each input is shifted left by
 * MDY_S8_ADD_LEFT_SHIFT, rescaled to a common scale 2 * max(a_scale, b_scale),
 * summed, then requantized to the output. */
typedef struct {
    int32_t a_zero, b_zero, y_zero;
    int32_t a_multiplier, a_shift;   /* a_scale / (2 max(a_scale, b_scale)) */
    int32_t b_multiplier, b_shift;   /* b_scale / (2 max(a_scale, b_scale)) */
    int32_t y_multiplier, y_shift;   /* 2 max(a_scale, b_scale) / (2^20 y_scale) */
    int32_t act_min, act_max;
} mdy_s8_add_quant;

/* Squeeze-excite channel multiply: one product of two codes, one requantization. */
typedef struct {
    int32_t x_zero, s_zero, y_zero;
    int32_t multiplier, shift;       /* x_scale * s_scale / y_scale */
    int32_t act_min, act_max;
} mdy_s8_mul_quant;

/* Conv 2D, groups == 1 (general and pointwise), weights int8 OHWI, bias int32
 * (may be NULL). */
void mdy_conv2d_nhwc_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                        const int8_t *x, const int8_t *w, const int32_t *bias, int8_t *y);
int32_t mdy_conv2d_nhwc_s8_get_buffer_size(const mdy_conv_params *p);

/* Depthwise conv 2D, groups == in_c, weights [out_c][k_h][k_w], out channel o
 * reads input channel o / m. */
void mdy_depthwise_conv2d_nhwc_s8(const mdy_conv_params *p, const mdy_s8_conv_quant *q,
                                  const int8_t *x, const int8_t *w, const int32_t *bias,
                                  int8_t *y);
int32_t mdy_depthwise_conv2d_nhwc_s8_get_buffer_size(const mdy_conv_params *p);

/* Fully connected: w [out_features][in_features]. */
void mdy_fully_connected_s8(int32_t in_features, int32_t out_features,
                            const mdy_s8_conv_quant *q, const int8_t *x, const int8_t *w,
                            const int32_t *bias, int8_t *y);

/* Residual add of two int8 tensors with their own scales. In place ok. */
void mdy_add_s8(int32_t n, const mdy_s8_add_quant *q, const int8_t *a, const int8_t *b,
                int8_t *y);

/* y[hw][c] = x[hw][c] * s[c] in int8 (squeeze-excite). */
void mdy_mul_channel_nhwc_s8(int32_t hw, int32_t c, const mdy_s8_mul_quant *q,
                             const int8_t *x, const int8_t *s, int8_t *y);

/* Average pool: y = y_zero + round(sum(x - x_zero) * x_scale / (n * y_scale)),
 * n the window's count (in-range taps, or k_h*k_w with count_include_pad), one
 * exact rounding, ties to even. scratch: mdy_avgpool_nhwc_s8_get_buffer_size bytes. */
void mdy_avgpool_nhwc_s8(const mdy_pool_params *p, const mdy_s8_rescale *q,
                         const int8_t *x, int8_t *y, int32_t *scratch);
int32_t mdy_avgpool_nhwc_s8_get_buffer_size(const mdy_pool_params *p);

/* Global average pool [h][w][c] -> [c], the average pool's rounding.
 * scratch: mdy_global_avgpool_nhwc_s8_get_buffer_size bytes. */
void mdy_global_avgpool_nhwc_s8(int32_t h, int32_t w, int32_t c, const mdy_s8_rescale *q,
                                const int8_t *x, int8_t *y, int32_t *scratch);
int32_t mdy_global_avgpool_nhwc_s8_get_buffer_size(int32_t h, int32_t w, int32_t c);

/* Max pool on the codes, then the rescale (monotone, so it commutes with max).
 * mask (optional, may be NULL): the fp32 max pool's backward state, exactly
 * (mdy_maxpool_nhwc_f32_mask_bytes(p) bytes; first maximum on the codes, in
 * the fp32 kernel's scan order), so mdy_maxpool_nhwc_f32_igrad routes the fp32
 * gradient with it. */
void mdy_maxpool_nhwc_s8(const mdy_pool_params *p, const mdy_s8_rescale *q,
                         const int8_t *x, int8_t *y, uint8_t *mask);

/* Concat along channels, each part rescaled to the output's scale (identity
 * rescale: a copy). */
void mdy_concat_channels_nhwc_s8(int32_t hw, int32_t ca, int32_t cb,
                                 const mdy_s8_rescale *qa, const mdy_s8_rescale *qb,
                                 const int8_t *a, const int8_t *b, int8_t *y);

/* Any elementwise int8 -> int8 function (hard-swish, hard-sigmoid, a stand-alone
 * clamp or rescale): y[i] = table[x[i] + 128], a 256-entry table built on the
 * host (medyate.planner.quant.*_table). In place ok. */
void mdy_table_s8(int32_t n, const int8_t *table, const int8_t *x, int8_t *y);

/* Model boundaries: y = clamp(rint(x / scale) + zero, -128, 127) (round half to
 * even, as ONNX QuantizeLinear), and y = (x - zero) * scale. */
void mdy_quantize_f32_s8(int32_t n, const float *x, float scale, int32_t zero, int8_t *y);
void mdy_dequantize_s8_f32(int32_t n, const int8_t *x, float scale, int32_t zero, float *y);

/* Training on the int8 graph (docs/ALGORITHM.md): gradients are fp32 in real
 * units; saved maps of selected channels are the forward's int8 codes; frozen
 * int8 layers pass input gradients with W = w_scale[o] * code. A kernel that
 * dequantizes a saved int8 tensor does it as mdy_dequantize_s8_f32 does,
 * real = (float)(code - zero) * scale, so it equals its fp32 twin on the
 * dequantized tensor bit for bit. */
/* dw_slices[k] += dW[:, sel[k]] from the int8 channel-planar map x_maps[k]
 * (x_zero, x_scale: the layer input's quantization). Slices as the fp32 kernels'. */
void mdy_conv2d_nhwc_s8_wgrad(const mdy_conv_params *p, const int8_t *x_maps,
                              int32_t x_zero, float x_scale, const uint16_t *sel,
                              int32_t n_sel, const float *dy, float *dw_slices);
void mdy_depthwise_conv2d_nhwc_s8_wgrad(const mdy_conv_params *p, const int8_t *x_maps,
                                        int32_t x_zero, float x_scale, const uint16_t *sel,
                                        int32_t n_sel, const float *dy, float *dw_slices);
void mdy_fully_connected_s8_wgrad(int32_t in_features, int32_t out_features,
                                  const int8_t *x_vals, int32_t x_zero, float x_scale,
                                  const uint16_t *sel, int32_t n_sel, const float *dy,
                                  float *dw_slices);
/* dx = conv_transpose(dy, w_scales[o] * w[o]) through a frozen int8 layer. */
void mdy_conv2d_nhwc_s8_igrad(const mdy_conv_params *p, const int8_t *w,
                              const float *w_scales, const float *dy, float *dx,
                              int accumulate);
void mdy_depthwise_conv2d_nhwc_s8_igrad(const mdy_conv_params *p, const int8_t *w,
                                        const float *w_scales, const float *dy, float *dx,
                                        int accumulate);
void mdy_fully_connected_s8_igrad(int32_t in_features, int32_t out_features,
                                  const int8_t *w, const float *w_scales, const float *dy,
                                  float *dx, int accumulate);
/* The clamp's 1-bit straight-through mask from int8 output codes: bit set where
 * act_min < y < act_max. Applied by mdy_clamp_f32_igrad. */
void mdy_clamp_mask_s8(int32_t n, const int8_t *y, int32_t act_min, int32_t act_max,
                       uint8_t *mask);
/* HardSwish backward from its saved int8 input (x_scale, x_zero): the
 * derivative of mdy_hardswish_f32_igrad at the dequantized input; dy, dx fp32. */
void mdy_hardswish_s8_igrad(int32_t n, const int8_t *x, float x_scale, int32_t x_zero,
                            const float *dy, float *dx, int accumulate);
/* Channel multiply backward from saved int8 operands: dx[hw][c] = dy * s_real[c]
 * (as mdy_mul_channel_nhwc_f32_igrad_x), ds[c] = sum_hw dy * x_real (as
 * mdy_mul_channel_nhwc_f32_igrad_s). */
void mdy_mul_channel_nhwc_s8_igrad_x(int32_t hw, int32_t c, const int8_t *s, float s_scale,
                                     int32_t s_zero, const float *dy, float *dx, int accumulate);
void mdy_mul_channel_nhwc_s8_igrad_s(int32_t hw, int32_t c, const int8_t *x, float x_scale,
                                     int32_t x_zero, const float *dy, float *ds, int accumulate);
/* SGD with QAS on an int8 slice: code -= lr * g / w_scale, stochastically
 * rounded (xorshift32 state *rng), clamped to [-127, 127]; then g = 0.
 * `groups` runs of `group` elements, run r with scale w_scales[r]; element i
 * at w[i * stride]. Returns sum g^2 before the update. */
float mdy_sgd_slice_s8(int32_t groups, int32_t group, int8_t *w, int32_t stride,
                       const float *w_scales, float *g, float lr, uint32_t *rng);
/* The same for an int32 bias of scales bias_scales[o] = x_scale * w_scale[o]:
 * b -= lr * g / bias_scale, stochastically rounded, saturated; then g = 0. */
float mdy_sgd_bias_s32(int32_t n, int32_t *b, const float *bias_scales, float *g, float lr,
                       uint32_t *rng);

/* A kernels-only build (the kernel tests, a kernel library without the
 * runtime) defines MDY_KERNELS_ONLY: kernels use nothing declared below. */
#ifndef MDY_KERNELS_ONLY
/* ------------------------------------------------------------ runtime
 * A planned model: op list in topological order, tensor table with arena
 * offsets, trainable-layer table. Produced by the host planner; handed to the
 * runtime either as C initialisers (codegen) or filled through cffi.
 */
typedef enum {
    MDY_OP_CONV2D = 1,
    MDY_OP_DEPTHWISE_CONV2D = 2,
    MDY_OP_FULLY_CONNECTED = 3,
    MDY_OP_CLAMP = 4,
    MDY_OP_HARDSIGMOID = 5,
    MDY_OP_HARDSWISH = 6,
    MDY_OP_ADD = 7,
    MDY_OP_MUL_CHANNEL = 8,
    MDY_OP_GLOBAL_AVGPOOL = 9,
    MDY_OP_AVGPOOL = 10,
    MDY_OP_MAXPOOL = 11,
    MDY_OP_CONCAT = 12,
    MDY_OP_RESHAPE = 13,     /* no-op: output aliases input (same NHWC bytes) */
    MDY_OP_SOFTMAX = 14,
    MDY_OP_DEQUANTIZE = 15   /* int8 codes -> fp32: the logits (or a float head's input) */
} mdy_op_kind;

/* Element type of a tensor's value. Gradients are always fp32, in real units. */
typedef enum {
    MDY_F32 = 0,
    MDY_S8 = 1               /* real = scale * (code - zero) */
} mdy_dtype;

#define MDY_NONE 0xFFFFu          /* absent tensor / layer index */
#define MDY_NO_OFFSET 0xFFFFFFFFu /* buffer not planned */

/* Tensor: an activation, with an arena offset for its value and one for its
 * gradient (MDY_NO_OFFSET where backward never needs it). The model input's
 * value lives outside the arena (passed by pointer: the dataset itself).
 * An MDY_S8 value takes 1 byte per element; its gradient 4 (fp32). */
typedef struct {
    uint32_t offset;
    uint32_t grad_offset;
    int32_t h, w, c;
    int32_t dtype;                /* mdy_dtype of the value */
    float scale;                  /* MDY_S8: quantization of the value */
    int32_t zero;
} mdy_tensor;

/* An op runs in int8 when its output tensor is MDY_S8 (and DEQUANTIZE, which
 * reads int8); its parameters are then the int8 kernels' (`quant`, int8
 * weights, int32 bias), otherwise the fp32 kernels'. */
typedef struct {
    int32_t kind;                 /* mdy_op_kind */
    uint16_t input[2];            /* tensor ids; input[1] = MDY_NONE if unary */
    uint16_t output;
    uint16_t layer;               /* trainable-layer index or MDY_NONE */
    uint32_t saved_offset;        /* backward state (mask bits or a copy of x) */
    uint32_t scratch_offset;      /* kernel scratch, MDY_NO_OFFSET if none */
    uint32_t scratch_size;        /* its bytes, >= the kernel's *_get_buffer_size
                                     (mdy_init checks) */
    uint8_t grad_accumulate[2];   /* 1: dx of input i adds to an existing gradient */
    uint8_t pad_[2];
    union {
        mdy_conv_params conv;     /* CONV2D, DEPTHWISE, FULLY_CONNECTED */
        mdy_pool_params pool;     /* AVGPOOL, MAXPOOL */
        /* act_min/act_max (int8 only): output codes strictly between them
         * have derivative 1 (the backward mask) */
        struct { float lo, hi; int32_t act_min, act_max; } clamp;
        struct { float alpha, beta; int32_t act_min, act_max; } hsig;
    } p;
    /* fp32: float weights and bias. int8: int8 weights (same layout), int32
     * bias. Frozen: flash; trainable: the layer's RAM copy. */
    const void *weight;
    const void *bias;
    /* int8 only. weight ops: [out_c] weight scales (frozen layers' input
     * gradient, QAS). `quant` by kind: mdy_s8_conv_quant (conv, depthwise,
     * fully connected), mdy_s8_add_quant, mdy_s8_mul_quant, mdy_s8_rescale
     * (pools; concat: two, one per input), a 256-entry int8 table (clamp,
     * hard-sigmoid, hard-swish). */
    const float *w_scales;
    const void *quant;
} mdy_op;

/* A pre-selected layer: any of its input channels may be in a selection. A
 * bias-only layer (its weights frozen, in flash) has channels 0 and weight
 * NULL: only its bias trains, and no selection can name one of its channels. */
typedef struct {
    uint16_t op;                  /* index into ops */
    uint16_t train_bias;          /* 1: bias trains every step */
    int32_t channels;             /* input channels (selectable) */
    int32_t slice_size;           /* weight-gradient elements of one channel (fp32) */
    int32_t map_size;             /* saved input elements of one channel (in_h*in_w) */
    int32_t map_words;            /* 4-byte words they take in the pool: map_size
                                     (fp32), ceil(map_size / 4) (int8) */
    void *weight;                 /* RAM, same array as ops[op].weight; NULL if
                                     bias-only */
    void *bias;                   /* RAM */
    const float *bias_scales;     /* int8: [out_c] x_scale * w_scale[o] (QAS of the bias) */
    uint32_t bias_grad_offset;    /* arena, out_c floats, MDY_NO_OFFSET if frozen */
} mdy_layer;

typedef struct {
    uint32_t hash;                /* model+plan hash (first 32 bits of sha256) */
    uint16_t n_ops, n_tensors, n_layers;
    uint16_t input, output;       /* tensor ids; output = logits */
    int32_t classes;
    const mdy_op *ops;
    const mdy_tensor *tensors;
    const mdy_layer *layers;
    uint32_t arena_size;          /* bytes */
    uint32_t pool_offset;         /* arena: selected channels' slices + maps */
    uint32_t pool_size;           /* bytes = channel budget (words: elements of fp32
                                     layers) * 4 */
    uint32_t max_selected;        /* most channels any selection within budget has */
    uint32_t stats_offset;        /* arena: max_selected floats of gradient stats */
    uint32_t sel_offset;          /* arena: max_selected mdy_channel entries */
} mdy_model;

/* One trained channel. A selection is an array sorted by (layer, channel),
 * strictly increasing. */
typedef struct {
    uint16_t layer;
    uint16_t channel;
} mdy_channel;

/* Run-time state, owned by the caller (a few words; everything sized by the
 * model lives in the arena). */
typedef struct {
    const mdy_model *model;
    uint8_t *arena;
    const void *input;            /* the current sample (not copied), in the input
                                     tensor's dtype */
    uint32_t n_selected;
    uint16_t first_op;            /* deepest op backward reaches (from the selection);
                                     n_ops when nothing trains */
    uint16_t pad_;
    float loss_sum;               /* since last mdy_reset_stats */
    uint32_t correct, seen;
    uint32_t steps;               /* SGD steps since last mdy_reset_stats */
    uint32_t nonfinite;           /* since the reset: samples whose loss was NaN/inf plus
                                     SGD steps with a NaN/inf gradient (divergence) */
    /* Optional cycle counter (NULL: no timing). Set after mdy_init; the epoch
     * functions below then add each phase's cycles (reset with the stats). */
    uint64_t (*clock)(void);
    uint64_t cycles_forward;      /* mdy_train_forward */
    uint64_t cycles_backward;     /* mdy_train_backward (loss + sparse backward) */
    uint64_t cycles_update;       /* mdy_sgd_step */
    uint32_t rng;                 /* xorshift32 state of the int8 stochastic rounding:
                                     from the model hash (mdy_init), then from the
                                     hash and the epoch (mdy_seed_rounding) */
} mdy_ctx;

mdy_status mdy_init(mdy_ctx *ctx, const mdy_model *model, uint8_t *arena);
/* A sample as the engine takes it: the model input's element type (fp32, or
 * the int8 codes of an int8 model). Bytes of one whole input: */
uint32_t mdy_input_bytes(const mdy_model *model);
/* Elements [first, first + n) of a float sample into `buf` (a whole input of
 * mdy_input_bytes): copied, or quantized with the input's (scale, zero) by
 * mdy_quantize_f32_s8, so every target quantizes with the same arithmetic. */
void mdy_input_from_f32(const mdy_model *model, const float *x, uint32_t first, uint32_t n,
                        void *buf);
/* The input's own arena region when the planner placed it there (int8 models),
 * else NULL. Free between samples: a device assembles or converts a sample in
 * it instead of keeping a buffer of its own. */
void *mdy_input_buffer(const mdy_ctx *ctx);
/* Validate and install a selection (copied into the arena). Bias-only
 * training is an empty selection with train_bias layers. */
mdy_status mdy_set_selection(mdy_ctx *ctx, const mdy_channel *sel, uint32_t n);
/* Forward only; logits to `out` (classes floats) if non-NULL. */
mdy_status mdy_forward(mdy_ctx *ctx, const void *input, float *out);
/* Forward + backward of one sample; gradients accumulate with scale 1/batch.
 * Equal to mdy_train_forward then mdy_train_backward (split so that a device
 * can count cycles per phase). */
mdy_status mdy_train_sample(mdy_ctx *ctx, const void *input, int32_t label, int32_t batch);
/* Forward that also saves what backward needs (masks, selected input maps). */
mdy_status mdy_train_forward(mdy_ctx *ctx, const void *input);
/* Loss of the last mdy_train_forward, then backward down to first_op. */
mdy_status mdy_train_backward(mdy_ctx *ctx, int32_t label, int32_t batch);
/* Apply SGD to all selected slices (and trainable biases), zero the gradients,
 * add each slice's squared gradient norm to the stats array. */
mdy_status mdy_sgd_step(mdy_ctx *ctx, float lr);
/* Restart the stochastic rounding's generator at an epoch's start from the
 * model hash and the epoch's `seed` (a session passes its shuffle seed, a pure
 * function of the run's seed and the epoch number): an epoch then draws the
 * same whatever ran before it, so a resumed or redone epoch is the
 * uninterrupted run's, on every target. */
void mdy_seed_rounding(mdy_ctx *ctx, uint32_t seed);
void mdy_reset_stats(mdy_ctx *ctx);
/* A trainable layer's weight (which 0) or bias (which 1) elements in real
 * units, whatever their storage (fp32, or int8 codes times their fixed scales;
 * set stores the nearest code, saturated). Count: elements of the array. */
uint32_t mdy_layer_param_count(const mdy_model *m, const mdy_layer *l, int which);
float mdy_layer_param_get(const mdy_model *m, const mdy_layer *l, int which, uint32_t i);
void mdy_layer_param_set(const mdy_model *m, const mdy_layer *l, int which, uint32_t i, float v);
/* Per selected channel: summed squared gradient norms since the reset. */
const float *mdy_channel_stats(const mdy_ctx *ctx);
/* Where selected channel k's gradient slice / saved map live (for tests and
 * the device protocol). */
float *mdy_slice_grad(const mdy_ctx *ctx, uint32_t k);

/* ------------------------------------------------------------ epoch
 * Training a sequence of samples in mini-batches and evaluating a sample,
 * written once: the device dispatcher and the host engine (cffi) both call
 * these, so every target takes the same mini-batch boundaries, the same
 * 1/size scaling of a last short mini-batch, the same SGD step points and
 * the same (sequential fp32) accumulation of loss and accuracy.
 */
typedef struct {
    uint32_t count;               /* samples, visited at positions 0 .. count-1 */
    uint32_t batch;               /* mini-batch size; the last one may be shorter */
    float lr;
} mdy_epoch;

/* Sample number `i` (its position in the visiting order) of an epoch: forward
 * and backward with its gradients scaled by 1/(size of its mini-batch), then
 * the SGD step when it closes its mini-batch. Statistics accumulate in ctx
 * (mdy_reset_stats starts an epoch). A device that receives samples one by
 * one (streaming) calls this per sample. */
mdy_status mdy_train_epoch_sample(mdy_ctx *ctx, const mdy_epoch *ep, uint32_t i,
                                  const void *x, int32_t label);
/* The sample at position i of the visiting order, and its label. */
typedef const void *(*mdy_sample_fn)(void *user, uint32_t i, int32_t *label);
/* Called after each sample with the number trained so far (may be NULL). */
typedef void (*mdy_progress_fn)(void *user, uint32_t done);
/* A whole epoch: mdy_train_epoch_sample for i = 0 .. count-1. Does not reset
 * the statistics (an epoch run in parts keeps them). */
mdy_status mdy_train_epoch(mdy_ctx *ctx, const mdy_epoch *ep, mdy_sample_fn sample,
                           mdy_progress_fn progress, void *user);

/* Evaluation totals; zero-initialise, then mdy_eval_sample per sample. */
typedef struct {
    float loss_sum;               /* cross-entropy, summed in fp32 in sample order */
    uint32_t correct, count;
    uint32_t nonfinite;           /* samples whose loss was NaN/inf */
} mdy_eval_stats;
/* Forward of one sample, its loss (the training loss) and whether its argmax
 * is the label added to `acc`; its logits to `logits` if non-NULL. Leaves
 * the training statistics and gradients alone. */
mdy_status mdy_eval_sample(mdy_ctx *ctx, const void *x, int32_t label, mdy_eval_stats *acc,
                           float *logits);
/* Index of the first maximum of x[0..n) (the predicted class). */
int32_t mdy_argmax_f32(int32_t n, const float *x);
#endif /* MDY_KERNELS_ONLY */

#ifdef __cplusplus
}
#endif
#endif /* MEDYATE_H */
