"""The int8 side of lowering: every tensor of a quantized graph gets its int8
codes' (scale, zero point), and every op the parameters of its int8 kernel.

Called by `program.lower(..., precision="int8")` once the op list exists; the
arithmetic of each parameter is `planner.quant`'s (the one host home of the
kernels' fixed-point rules). What each op keeps, in `Op.s8`:

- Conv, depthwise, fully connected: int8 weights in the C layout, the int32
  bias, the per-output-channel weight scales (the frozen layers' input
  gradient and QAS use them), the bias scales x_scale * w_scale[o] (QAS of a
  trained bias) and `mdy_s8_conv_quant`; a Relu/Clip after the op is fused
  into its act_min/act_max, as the imported graph's quantization says
  (`Graph.output_quant`);
- Add, Mul: `mdy_s8_add_quant` / `mdy_s8_mul_quant`, with a fused clamp the
  same way;
- the pools: `mdy_s8_rescale`; Concat: one per input;
- Relu/Clip, HardSigmoid, HardSwish: the 256-entry table of `mdy_table_s8`;
  the first two also the output codes between which the derivative is 1
  (the backward's 1-bit mask, docs/ALGORITHM.md section 6).

A tensor without int8 parameters is an error naming its node (the policy of
`ir.quantize.require_int8`, checked before lowering).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import MedyateError
from ..ir.graph import Graph, Node, nearest_codes
from . import quant as Q
from .program import (ADD, AVGPOOL, CLAMP, CONCAT, CONV2D, DEPTHWISE_CONV2D, FULLY_CONNECTED,
                      DEQUANTIZE, GLOBAL_AVGPOOL, HARDSIGMOID, HARDSWISH, MAXPOOL, MUL_CHANNEL,
                      RESHAPE, S8, Op, Tensor, c_weight_layout, clamp_bounds)


@dataclass
class S8Params:
    """What an int8 op hands its kernels (see the module doc)."""
    struct: str = ""                     # C type of `quant`: mdy_s8_conv_quant, ..., or ""
    quant: list[dict] = field(default_factory=list)   # its fields (Concat: two structs)
    table: np.ndarray | None = None      # int8 [256]
    act: tuple[int, int] | None = None   # mask bounds of a clamp / hard-sigmoid
    weight_q: np.ndarray | None = None   # int8, C layout
    bias_q: np.ndarray | None = None     # int32 [out_c]
    w_scales: np.ndarray | None = None   # float32 [out_c]
    bias_scales: np.ndarray | None = None  # float32 [out_c]


def _fused_act(graph: Graph, node: Node, y: Tensor) -> tuple[int, int]:
    """Output code range of an op whose Relu/Clip the int8 kernel applies."""
    t = node.outputs[0]
    cs = graph.consumers(t)
    if t not in graph.quant and len(cs) == 1 and cs[0].op in ("Relu", "Clip"):
        return Q.act_range(y.scale, y.zero, *clamp_bounds(cs[0]))
    return Q.QMIN, Q.QMAX


def quantize_program(graph: Graph, ops: list[Op], tensors: list[Tensor], nodes: list,
                     input_tensor: int, float_tail: set[str] = frozenset()) -> None:
    """Set the int8 dtype and parameters of `tensors` and `ops` (nodes[i]: the IR
    node of ops[i], None for the DEQUANTIZE ops lowering added). The model input
    becomes int8 codes; the outputs of DEQUANTIZE and of the `float_tail` nodes (a
    head with float logits) stay fp32, and so do those ops."""
    x = tensors[input_tensor]
    q = graph.quant[graph.input]
    x.dtype, x.scale, x.zero = S8, float(np.float32(q.scale)), int(q.zero_point)
    def fp32(i):
        return ops[i].kind == DEQUANTIZE or (nodes[i] is not None and nodes[i].name in float_tail)

    for i, op in enumerate(ops):
        node = nodes[i]
        y = tensors[op.output]
        if fp32(i):
            continue
        q = graph.output_quant(node)
        if q is None:
            raise MedyateError(f"node {node.name} ({node.op}): its output has no int8 "
                               "quantization parameters; the int8 path needs every tensor "
                               "quantized (quantize the model, or use --precision fp32)")
        y.dtype, y.scale, y.zero = S8, float(np.float32(q.scale)), int(q.zero_point)
    for i, op in enumerate(ops):
        if op.kind == RESHAPE or fp32(i):
            continue
        op.s8 = _op_params(graph, nodes[i], op, tensors)


def _op_params(graph: Graph, node: Node, op: Op, tensors: list[Tensor]) -> S8Params:
    x, y = tensors[op.inputs[0]], tensors[op.output]
    what = f"node {node.name} ({node.op})"
    s = S8Params()
    if op.kind in (CONV2D, DEPTHWISE_CONV2D, FULLY_CONNECTED):
        wq = node.quant
        s.weight_q = np.ascontiguousarray(c_weight_layout(graph, node, wq.weight_q), np.int8)
        s.bias_q = np.ascontiguousarray(wq.bias_q, np.int32)
        s.w_scales = np.ascontiguousarray(wq.weight_scale, np.float32)
        # the bias scale exactly as import computed the int32 bias with it
        s.bias_scales = (np.float32(x.scale) * s.w_scales).astype(np.float32)
        s.bias_q = _bias_headroom(s, x, y, what)
        s.struct = "mdy_s8_conv_quant"
        s.quant = [Q.conv_quant(x.scale, s.w_scales, y.scale, x.zero, y.zero,
                                _fused_act(graph, node, y), what)]
    elif op.kind == ADD:
        b = tensors[op.inputs[1]]
        s.struct = "mdy_s8_add_quant"
        s.quant = [Q.add_quant(x.scale, x.zero, b.scale, b.zero, y.scale, y.zero,
                               _fused_act(graph, node, y), what)]
    elif op.kind == MUL_CHANNEL:
        sc = tensors[op.inputs[1]]
        s.struct = "mdy_s8_mul_quant"
        s.quant = [Q.mul_quant(x.scale, x.zero, sc.scale, sc.zero, y.scale, y.zero,
                               _fused_act(graph, node, y), what)]
    elif op.kind in (GLOBAL_AVGPOOL, AVGPOOL, MAXPOOL):
        s.struct = "mdy_s8_rescale"
        s.quant = [Q.rescale_quant(x.scale, x.zero, y.scale, y.zero, what=what)]
    elif op.kind == CONCAT:
        b = tensors[op.inputs[1]]
        s.struct = "mdy_s8_rescale"
        s.quant = [Q.rescale_quant(x.scale, x.zero, y.scale, y.zero, what=what),
                   Q.rescale_quant(b.scale, b.zero, y.scale, y.zero, what=what)]
    elif op.kind == CLAMP:
        lo, hi = op.params["lo"], op.params["hi"]
        s.table = Q.clamp_table(lo, hi, x.scale, x.zero, y.scale, y.zero)
        s.act = Q.act_range(y.scale, y.zero, lo, hi)
    elif op.kind == HARDSIGMOID:
        a = op.params
        s.table = Q.hardsigmoid_table(a["alpha"], a["beta"], x.scale, x.zero, y.scale, y.zero)
        s.act = Q.act_range(y.scale, y.zero, 0.0, 1.0)
    elif op.kind == HARDSWISH:
        s.table = Q.hardswish_table(x.scale, x.zero, y.scale, y.zero)
    else:
        raise MedyateError(f"{what}: no int8 kernel for this op")
    return s


def _bias_headroom(s: S8Params, x: Tensor, y: Tensor, what: str) -> np.ndarray:
    """The int32 bias with room for the channel's largest sum of products.

    A channel whose weight scale is tiny (a dead channel of a real model: TTE's
    mcunet-5fps has w_scale 5e-8) carries its real bias in a code at the int32
    limit, where adding any product would overflow. Pulling such a code in by
    its channel's largest sum of products changes the real bias by less than
    half an output code (checked), so the int8 output is unchanged. Every
    channel then has |bias| + sum|w| * max|x - x_zero| <= 2^31 - 1: no int32
    accumulator of the layer can overflow (planner.quant.check_accumulator's
    worst case, with the layer's own weights)."""
    span = max(Q.QMAX - x.zero, x.zero - Q.QMIN)
    room = Q.INT32_MAX - np.abs(s.weight_q.astype(np.int64)).reshape(len(s.bias_q), -1).sum(1) * span
    b = s.bias_q.astype(np.int64)
    pulled = np.clip(b, -room, room)
    change = np.abs(b - pulled) * s.bias_scales.astype(np.float64)
    if np.any(change > 0.5 * y.scale):
        o = int(np.argmax(change))
        raise MedyateError(f"{what}: int32 accumulator of output channel {o} may overflow "
                           "(its bias code leaves no room for the products)")
    return pulled.astype(np.int32)


def scratch_bytes(op: Op, tensors: list[Tensor]) -> int:
    """Bytes of scratch an int8 op's kernel needs: the formulas of the kernels'
    *_get_buffer_size (the runtime checks the planned size against them at
    mdy_init, and the tests compare them with the C functions)."""
    if op.s8 is None:
        return 0
    if op.kind == GLOBAL_AVGPOOL:
        return 4 * tensors[op.inputs[0]].c
    if op.kind == AVGPOOL:
        return 4 * op.params["c"]
    return 0


def dequantized_weights(op: Op) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) in real units of an int8 op's current codes, C layout: the
    runtime's mdy_layer_param_get, in the same float32 arithmetic."""
    s = op.s8
    shape = (-1,) + (1,) * (s.weight_q.ndim - 1)
    w = s.weight_q.astype(np.float32) * s.w_scales.reshape(shape)
    b = s.bias_q.astype(np.float32) * s.bias_scales
    return w.astype(np.float32), b.astype(np.float32)


def quantize_weights(op: Op, w: np.ndarray, b: np.ndarray) -> None:
    """Store real-unit (weight, bias), C layout, as the nearest codes of an int8
    op's fixed scales: the runtime's mdy_layer_param_set, in float32."""
    s = op.s8
    s.weight_q[...], s.bias_q[...] = nearest_codes(w, s.w_scales, b, s.bias_scales)
