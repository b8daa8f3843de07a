"""Lowering: IR `Graph` (NCHW, ONNX layouts) -> `Program` (what the C runtime
executes: NHWC tensors, OHWI weights, op kinds and parameters of medyate.h).

A Program is the single description both back ends consume: the host engine
fills `mdy_model` through cffi from it and codegen prints the same structure
as C initialisers. Memory offsets are added by `planner.arena`.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import MedyateError
from ..ir.graph import Graph, Node

# mdy_op_kind (medyate.h)
CONV2D, DEPTHWISE_CONV2D, FULLY_CONNECTED, CLAMP, HARDSIGMOID, HARDSWISH, ADD, \
    MUL_CHANNEL, GLOBAL_AVGPOOL, AVGPOOL, MAXPOOL, CONCAT, RESHAPE, SOFTMAX, \
    DEQUANTIZE = range(1, 16)
KIND_NAMES = {CONV2D: "conv2d", DEPTHWISE_CONV2D: "depthwise_conv2d",
              FULLY_CONNECTED: "fully_connected", CLAMP: "clamp", HARDSIGMOID: "hardsigmoid",
              HARDSWISH: "hardswish", ADD: "add", MUL_CHANNEL: "mul_channel",
              GLOBAL_AVGPOOL: "global_avgpool", AVGPOOL: "avgpool", MAXPOOL: "maxpool",
              CONCAT: "concat", RESHAPE: "reshape", SOFTMAX: "softmax",
              DEQUANTIZE: "dequantize"}
# mdy_dtype (medyate.h) and bytes per element of a value
F32, S8 = 0, 1
ELEMENT_BYTES = {F32: 4, S8: 1}
PRECISIONS = ("fp32", "int8")
WEIGHTED = (CONV2D, DEPTHWISE_CONV2D, FULLY_CONNECTED)
# Unary elementwise ops that may overwrite their input (value and gradient).
IN_PLACE = (CLAMP, HARDSIGMOID, HARDSWISH)
NONE = 0xFFFF


@dataclass
class Tensor:
    name: str
    h: int
    w: int
    c: int
    producer: int | None = None          # op index; None for the model input
    alias: int | None = None             # tensor id whose bytes (value and grad) it shares
    offset: int | None = None            # arena byte offset of the value
    grad_offset: int | None = None       # arena byte offset of the gradient
    dtype: int = F32                     # of the value; gradients are always fp32
    scale: float = 0.0                   # S8: real = scale * (code - zero)
    zero: int = 0

    @property
    def numel(self) -> int:
        return self.h * self.w * self.c

    @property
    def nbytes(self) -> int:
        return ELEMENT_BYTES[self.dtype] * self.numel

    @property
    def grad_nbytes(self) -> int:
        return 4 * self.numel


@dataclass
class Op:
    name: str                            # the ONNX node's name
    kind: int
    inputs: list[int]
    output: int
    params: dict = field(default_factory=dict)
    weight: np.ndarray | None = None     # C layout (OHWI / [O][kh][kw] / [O][I]), float32
    bias: np.ndarray | None = None
    layer: int | None = None             # trainable-layer index
    saved_bytes: int = 0                 # backward state, 0 if backward never reaches it
    saved_offset: int | None = None
    scratch_bytes: int = 0               # kernel scratch (the kernel's *_get_buffer_size)
    scratch_offset: int | None = None
    grad_accumulate: list[int] = field(default_factory=lambda: [0, 0])
    # int8 ops (see planner.int8): what the int8 kernels take instead of the above
    s8: "object | None" = None           # planner.int8.S8Params

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]


@dataclass(frozen=True)
class LayerSpec:
    """A trainable layer as the algorithm plans with it, and as every engine
    (the host engine, a device session, a test's stand-in) reports it: the one
    record of a layer's selectable channels and their pool cost. (The device's
    LAYERS answer, protocol.device.LayerInfo, is the wire's own.)"""
    name: str
    channels: int               # selectable input channels
    slice_size: int             # weight-gradient elements of one channel
    map_size: int               # saved input-map elements of one channel
    map_words: int | None = None   # 4-byte pool words of that map when not map_size (int8)
    out_c: int = 0
    wgrad_macs_per_channel: int = 0

    @property
    def cost(self) -> int:
        """Pool cost of one input channel, in 4-byte words: the paper's elements
        on the fp32 path (Layer.cost)."""
        return self.slice_size + (self.map_size if self.map_words is None else self.map_words)

    @property
    def total_cost(self) -> int:
        return self.channels * self.cost


@dataclass
class Layer:
    name: str
    op: int
    channels: int
    slice_size: int
    map_size: int
    out_c: int
    train_bias: bool
    bias_grad_offset: int | None = None
    map_bytes: int = 4                   # per saved element: 4 (fp32) or 1 (int8 codes)
    # Only the bias trains: the weights are never written, so they stay in
    # flash, and the layer has no selectable channels (channels == 0).
    bias_only: bool = False

    @property
    def map_words(self) -> int:
        """4-byte words one saved map takes in the channel pool."""
        return -(-self.map_size * self.map_bytes // 4)

    @property
    def cost(self) -> int:
        """Pool words of one input channel: gradient slice + saved map. On the
        fp32 path these are the paper's elements; an int8 map counts a quarter."""
        return self.slice_size + self.map_words


@dataclass
class Program:
    name: str
    ops: list[Op]
    tensors: list[Tensor]
    layers: list[Layer]
    input: int
    output: int
    classes: int
    input_shape: tuple[int, ...]         # NCHW as the ONNX model expects
    output_softmax: bool                 # the ONNX model ends in Softmax (dropped here)
    source_sha256: str
    memory: "object | None" = None       # planner.arena.ArenaPlan once planned
    precision: str = "fp32"              # fp32 | int8 (PRECISIONS)

    @property
    def deepest_trainable_op(self) -> int:
        return min((l.op for l in self.layers), default=len(self.ops))

    def check_selection(self, pairs) -> None:
        """Refuse a selection that names a channel of a bias-only layer, naming
        the layer (the runtime refuses it too, as a channel out of range: the
        layer has no selectable channels). Every engine checks here first."""
        for k, (li, c) in enumerate(pairs):
            if 0 <= li < len(self.layers) and self.layers[li].bias_only:
                raise MedyateError(
                    f"selection entry {k}: channel {c} of layer {self.layers[li].name}, which "
                    "trains only its bias (its weights are frozen): it has no channels to select")

    def hash32(self, budget_elements: int = 0) -> int:
        """Ties a firmware image to the model file and the trainable layout, so a
        host never drives a device built for another plan."""
        h = hashlib.sha256(self.source_sha256.encode())
        for l in self.layers:
            # a bias-only layer's weights are const (flash) in the image
            h.update(f"{l.name}:{int(l.train_bias)}{':bias-only' if l.bias_only else ''};"
                     .encode())
        h.update(str(budget_elements).encode())
        if self.precision != "fp32":
            h.update(self.precision.encode())
        return int.from_bytes(h.digest()[:4], "little")


def _nhwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 4:
        return shape[2], shape[3], shape[1]
    if len(shape) == 2:
        return 1, 1, shape[1]
    if len(shape) == 3:  # [1, C, L]: treat L as width
        return 1, shape[2], shape[1]
    raise MedyateError(f"tensor of shape {shape} has no NHWC equivalent")


def _flatten_source(graph: Graph, tensor: str) -> tuple[int, ...] | None:
    """The 4-D shape a Gemm input was flattened from, if any (through
    Flatten/Reshape chains), else None."""
    prod = graph.producer(tensor)
    while prod is not None and prod.op in ("Flatten", "Reshape"):
        src = prod.inputs[0]
        shape = graph.shapes[src]
        if len(shape) == 4 and shape[2] * shape[3] > 1:
            return shape
        prod = graph.producer(src)
    return None


def _conv_params(graph: Graph, node: Node) -> dict:
    n_, c, h, w = graph.shapes[node.inputs[0]]
    _, oc, oh, ow = graph.shapes[node.outputs[0]]
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["strides"]
    pt, pl, _, _ = node.attrs["pads"]
    return dict(in_h=h, in_w=w, in_c=c, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
                stride_h=sh, stride_w=sw, pad_top=pt, pad_left=pl,
                groups=node.attrs.get("group", 1))


def _pool_params(graph: Graph, node: Node) -> dict:
    _, c, h, w = graph.shapes[node.inputs[0]]
    _, _, oh, ow = graph.shapes[node.outputs[0]]
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["strides"]
    pt, pl, _, _ = node.attrs["pads"]
    return dict(in_h=h, in_w=w, c=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw,
                stride_h=sh, stride_w=sw, pad_top=pt, pad_left=pl,
                count_include_pad=int(node.attrs.get("count_include_pad", 0)))


def clamp_bounds(node: Node) -> tuple[float, float]:
    """[lo, hi] of a Relu ([0, inf)) or Clip node."""
    if node.op == "Relu":
        return 0.0, math.inf
    return float(node.attrs.get("min", -math.inf)), float(node.attrs.get("max", math.inf))


def c_weight_layout(graph: Graph, node: Node, w: np.ndarray) -> np.ndarray:
    """A Conv/Gemm weight (ONNX layout; float values or int8 codes) in the C
    kernels' layout: OHWI, [O][kh][kw] (depthwise), [O][I] with NHWC columns."""
    if node.op == "Conv":
        if node.is_depthwise:
            return w.reshape(w.shape[0], w.shape[2], w.shape[3])
        return w.transpose(0, 2, 3, 1)                       # OIHW -> OHWI
    src = _flatten_source(graph, node.inputs[0])
    if src is not None:
        # ONNX flattens NCHW (c-major); our memory is NHWC (c-minor): permute
        # the columns once so the math is unchanged.
        _, c, h, wd = src
        w = w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    return w


def lower(graph: Graph, trainable: list[str] = (), train_bias: bool = False,
          precision: str = "fp32", bias_only=()) -> Program:
    """Lower `graph`; `trainable` names the pre-selected layers (ONNX node names).
    `bias_only` names layers of `trainable` whose weights stay frozen: only their
    bias trains (whatever `train_bias` says for the other layers), they have no
    selectable channels, and their weights stay in flash on a device.
    `precision` int8 runs a quantized graph on the int8 kernels (planner.int8):
    the model input is int8 codes (whoever feeds the engine quantizes samples with
    the runtime's mdy_input_from_f32), the logits are dequantized by a last
    DEQUANTIZE op, and every op in between is int8."""
    if precision not in PRECISIONS:
        raise MedyateError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    s8 = precision == "int8"
    float_tail: set[str] = set()
    if s8:
        from ..ir.quantize import float_logits, require_int8
        require_int8(graph)
        # A head without int8 output parameters (a new head, ir/head.py) runs in
        # fp32 on its dequantized input: no logit range has to be guessed.
        float_tail = float_logits(graph)
    unknown = [t for t in trainable if t not in {n.name for n in graph.nodes}]
    if unknown:
        raise MedyateError("unknown layer(s) in the plan: " + ", ".join(unknown))
    not_trainable = [t for t in trainable if not graph.node(t).trainable]
    if not_trainable:
        raise MedyateError("layer(s) without weights cannot be trained: " + ", ".join(
            f"{t} ({graph.node(t).op})" for t in not_trainable))

    stray = [b for b in bias_only if b not in set(trainable)]
    if stray:
        raise MedyateError("bias-only layer(s) not among the trainable layers: " +
                           ", ".join(stray))
    bias_only = set(bias_only)

    tensors: list[Tensor] = []
    tid: dict[str, int] = {}

    def tensor(name: str) -> int:
        if name not in tid:
            tid[name] = len(tensors)
            tensors.append(Tensor(name, *_nhwc(graph.shapes[name])))
        return tid[name]

    inp = tensor(graph.input)
    ops: list[Op] = []
    output_name = graph.output
    softmax = False
    nodes_of: list = [None] * len(ops)     # the IR node of each op (None: added here)
    for node in graph.nodes:
        if node.op == "Softmax":
            if node.outputs[0] != graph.output:
                raise MedyateError(f"node {node.name}: Softmax is supported only as the "
                                   "model's output")
            softmax = True
            output_name = node.inputs[0]
            continue
        ins = [tensor(t) for t in node.inputs]
        if node.name in float_tail and node.op in ("Conv", "Gemm"):
            ins[0] = len(tensors)
            tensors.append(Tensor(f"{node.inputs[0]}:float", *_nhwc(graph.shapes[node.inputs[0]]),
                                  producer=len(ops)))
            ops.append(Op(f"{node.name}:dequantize", DEQUANTIZE, [tid[node.inputs[0]]], ins[0]))
            nodes_of.append(None)
        out = tensor(node.outputs[0])
        op = Op(node.name, 0, ins, out)
        a = node.attrs
        if node.op == "Conv":
            p = _conv_params(graph, node)
            if node.is_depthwise:
                op.kind = DEPTHWISE_CONV2D
            elif p["groups"] == 1:
                op.kind = CONV2D
            else:
                raise MedyateError(f"node {node.name}: grouped convolution with "
                                   f"{p['groups']} groups is not supported")
            op.weight = c_weight_layout(graph, node, node.params["weight"])
            op.params = p
            op.bias = node.params["bias"]
        elif node.op == "Gemm":
            w = c_weight_layout(graph, node, node.params["weight"])
            op.kind = FULLY_CONNECTED
            op.weight = w
            op.bias = node.params["bias"]
            op.params = dict(in_h=1, in_w=1, in_c=w.shape[1], out_h=1, out_w=1, out_c=w.shape[0],
                             k_h=1, k_w=1, stride_h=1, stride_w=1, pad_top=0, pad_left=0,
                             groups=1)
        elif node.op in ("Relu", "Clip"):
            lo, hi = clamp_bounds(node)
            op.kind, op.params = CLAMP, dict(lo=lo, hi=hi)
        elif node.op == "HardSigmoid":
            op.kind, op.params = HARDSIGMOID, dict(alpha=float(a["alpha"]), beta=float(a["beta"]))
        elif node.op == "HardSwish":
            op.kind = HARDSWISH
        elif node.op == "Add":
            op.kind = ADD
            if graph.shapes[node.inputs[0]] != graph.shapes[node.inputs[1]]:
                raise MedyateError(f"node {node.name}: Add with broadcasting is not supported")
        elif node.op == "Mul":
            op.kind = MUL_CHANNEL
        elif node.op == "GlobalAveragePool":
            op.kind = GLOBAL_AVGPOOL
        elif node.op == "AveragePool":
            op.kind, op.params = AVGPOOL, _pool_params(graph, node)
        elif node.op == "MaxPool":
            op.kind, op.params = MAXPOOL, _pool_params(graph, node)
        elif node.op in ("Flatten", "Reshape"):
            op.kind = RESHAPE
            src = graph.shapes[node.inputs[0]]
            if len(src) == 4 and src[2] * src[3] > 1 and not all(
                    c.op == "Gemm" for c in graph.consumers(node.outputs[0])):
                raise MedyateError(f"node {node.name}: reshaping a spatial map is supported "
                                   "only in front of a fully connected layer")
        elif node.op == "Concat":
            if a.get("axis", 1) != 1 or len(ins) != 2:
                raise MedyateError(f"node {node.name}: Concat is supported along channels "
                                   "with two inputs")
            op.kind = CONCAT
        else:
            raise MedyateError(f"node {node.name}: op {node.op} has no engine kernel")
        if op.weight is not None:
            op.weight = np.ascontiguousarray(op.weight, dtype=np.float32)
            op.bias = np.ascontiguousarray(op.bias, dtype=np.float32)
        tensors[out].producer = len(ops)
        ops.append(op)
        nodes_of.append(node)

    out = tid[output_name]
    classes = tensors[out].numel
    if tensors[out].h * tensors[out].w != 1:
        raise MedyateError(f"model output {output_name} is not a vector of class scores")
    if s8:
        from .int8 import quantize_program
        quantize_program(graph, ops, tensors, nodes_of, inp, float_tail)
        if tensors[out].dtype == S8:
            # The loss and its gradient are fp32: dequantize the logits last.
            logits = len(tensors)
            tensors.append(Tensor(f"{output_name}:float", *_nhwc(graph.shapes[output_name]),
                                  producer=len(ops)))
            ops.append(Op(f"{output_name}:dequantize", DEQUANTIZE, [out], logits))
            out = logits

    # Aliases: reshapes share their input's bytes; in-place unary ops reuse
    # their input when nothing else reads it.
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            consumers.setdefault(t, []).append(i)
    for i, op in enumerate(ops):
        x = op.inputs[0]
        if op.kind == RESHAPE:
            if x == inp:
                raise MedyateError(f"node {op.name}: reshaping the model input is not supported")
            if len(consumers[x]) != 1:
                raise MedyateError(f"node {op.name}: its input has other consumers")
            tensors[op.output].alias = x
        elif op.kind in IN_PLACE and x != inp and len(consumers[x]) == 1:
            tensors[op.output].alias = x
    for t in tensors:          # resolve chains to the root
        while t.alias is not None and tensors[t.alias].alias is not None:
            t.alias = tensors[t.alias].alias

    # Trainable layers in op order.
    layers: list[Layer] = []
    wanted = set(trainable)
    for i, op in enumerate(ops):
        if op.name not in wanted:
            continue
        p = op.params
        if op.kind == DEPTHWISE_CONV2D:
            m = p["out_c"] // p["in_c"]
            slice_size, map_size = m * p["k_h"] * p["k_w"], p["in_h"] * p["in_w"]
        elif op.kind == CONV2D:
            slice_size, map_size = p["out_c"] * p["k_h"] * p["k_w"], p["in_h"] * p["in_w"]
        else:
            slice_size, map_size = p["out_c"], 1
        op.layer = len(layers)
        frozen_w = op.name in bias_only
        layers.append(Layer(op.name, i, 0 if frozen_w else p["in_c"], slice_size, map_size,
                            p["out_c"], train_bias or frozen_w,
                            map_bytes=ELEMENT_BYTES[tensors[op.inputs[0]].dtype],
                            bias_only=frozen_w))

    return Program(graph.name, ops, tensors, layers, inp, out, classes,
                   tuple(graph.shapes[graph.input]), softmax, graph.source_sha256,
                   precision=precision)
