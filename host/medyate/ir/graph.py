"""The training IR: the one model description shared by profiler, planner,
codegen and trainer.

After import (see `onnx_import`), a `Graph` holds only the canonical ops below,
with static NCHW shapes (batch 1), weights as numpy arrays, constants folded and
BatchNormalization folded into the conv before it. Node and tensor names are the
ONNX file's, so every result maps back to it.

Canonical ops and their attributes:
    Conv               strides (sh, sw), pads (top, left, bottom, right), group,
                       kernel (kh, kw); params weight [O, I/g, kh, kw], bias [O]
    Gemm               fully connected y = W x + b; params weight [O, I], bias [O]
                       (Gemm with transB, MatMul + Add are all lowered to this)
    Relu, Clip         Clip: min, max (floats; +-inf when absent)
    HardSigmoid        alpha, beta
    HardSwish
    Add                same-shape elementwise (residual)
    Mul                x [1,C,H,W] * s [1,C,1,1] (squeeze-excite); inputs (x, s)
    GlobalAveragePool
    AveragePool        kernel, strides, pads, count_include_pad
    MaxPool            kernel, strides, pads
    Flatten, Reshape   shape change only
    Concat             axis (1 = channels)
    Softmax            axis; only as the graph's output

Quantization (models imported from QDQ or QLinear* ONNX; empty for float models). The
float view above is always complete: weights and biases in `params` are the dequantized
values, Q/DQ pairs are not nodes, so the fp32 path never looks at what follows.
    Graph.quant[tensor] -> QuantParams(scale, zero_point)
        per-tensor int8 affine quantization of an activation tensor (the graph input
        included): real = scale * (code - zero_point), code in [-128, 127]. uint8 tensors
        of the file are stored as the equivalent int8 (zero_point - 128, same scale).
    Node.quant -> WeightQuant (Conv and Gemm of a quantized graph, else None)
        weight_q      int8, the shape of params["weight"], symmetric (zero point 0)
        weight_scale  float32 [O], per output channel (a per-tensor scale is repeated)
        bias_q        int32 [O], at scale input_scale * weight_scale[o] (zero point 0)
        so that params["weight"] == weight_q * weight_scale[o] and params["bias"] ==
        bias_q * input_scale * weight_scale[o] (as float32 values of the file).
    A Conv/Gemm/Add whose output feeds only a Relu/Clip carries no output quantization
    of its own: the int8 kernel fuses the clamp and uses the Relu/Clip output's
    (`Graph.output_quant`). Flatten/Reshape pass codes through unchanged.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

CANONICAL_OPS = (
    "Conv", "Gemm", "Relu", "Clip", "HardSigmoid", "HardSwish", "Add", "Mul",
    "GlobalAveragePool", "AveragePool", "MaxPool", "Flatten", "Reshape",
    "Concat", "Softmax",
)

# Ops whose weights can be trained (the "layers" of the algorithm).
TRAINABLE_OPS = ("Conv", "Gemm")


@dataclass(frozen=True)
class QuantParams:
    """Per-tensor int8 quantization: real = scale * (code - zero_point)."""
    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float -> int8 codes (round half to even, saturate), as ONNX QuantizeLinear."""
        q = np.round(np.asarray(x, np.float64) / self.scale) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, np.float64) - self.zero_point) * self.scale


@dataclass
class WeightQuant:
    """int8 weights of a Conv/Gemm: symmetric, per output channel; int32 bias."""
    weight_q: np.ndarray | None      # int8, shape of params["weight"]; None once trained
    weight_scale: np.ndarray         # float32 [O]
    bias_q: np.ndarray | None        # int32 [O] at input_scale * weight_scale

    def copy(self) -> "WeightQuant":
        return WeightQuant(None if self.weight_q is None else self.weight_q.copy(),
                           self.weight_scale.copy(),
                           None if self.bias_q is None else self.bias_q.copy())


# The largest int32 bias code whose float32 value is still an int32 (2^31 - 128).
BIAS_CODE_MAX = 2147483520.0


def nearest_codes(w, w_scales, b, bias_scales) -> tuple[np.ndarray, np.ndarray]:
    """Real-unit (weight, bias) of an int8 Conv/Gemm (any layout with the output channel
    first) -> the nearest (int8 weight codes, int32 bias codes) of its fixed scales, in
    the float32 arithmetic of the runtime's mdy_layer_param_set: codes times scales in
    float32 (what the engine reports) come back as the same codes."""
    w = np.asarray(w, np.float32)
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = np.clip(np.rint(w / np.asarray(w_scales, np.float32).reshape(shape)), -127, 127)
    qb = np.clip(np.rint(np.asarray(b, np.float32) / np.asarray(bias_scales, np.float32)),
                 -BIAS_CODE_MAX, BIAS_CODE_MAX)
    return q.astype(np.int8), qb.astype(np.int32)


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    quant: WeightQuant | None = None     # Conv/Gemm of a quantized graph (see module doc)

    @property
    def trainable(self) -> bool:
        return self.op in TRAINABLE_OPS

    @property
    def is_depthwise(self) -> bool:
        if self.op != "Conv":
            return False
        # groups == in_channels <=> one input channel per group
        return self.attrs.get("group", 1) > 1 and self.params["weight"].shape[1] == 1


@dataclass
class Graph:
    name: str
    nodes: list[Node]                    # topological order
    shapes: dict[str, tuple[int, ...]]   # every activation tensor, NCHW, batch 1
    input: str
    output: str
    source_sha256: str = ""              # of the ONNX file it came from
    quant: dict[str, QuantParams] = field(default_factory=dict)   # activation tensors

    @property
    def is_quantized(self) -> bool:
        return bool(self.quant)

    def output_quant(self, node: Node) -> QuantParams | None:
        """Quantization of what `node` writes, looking through a fused Relu/Clip that is
        its only consumer (the int8 kernel applies that clamp itself)."""
        t = node.outputs[0]
        if t in self.quant:
            return self.quant[t]
        cs = self.consumers(t)
        if len(cs) == 1 and cs[0].op in ("Relu", "Clip") and t != self.output:
            return self.quant.get(cs[0].outputs[0])
        return None

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, tensor: str) -> Node | None:
        for n in self.nodes:
            if tensor in n.outputs:
                return n
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def trainable_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.trainable]

    def copy(self) -> "Graph":
        """Deep copy (weights too): training changes weights in place."""
        nodes = [dataclasses.replace(n, inputs=list(n.inputs), outputs=list(n.outputs),
                                     attrs=dict(n.attrs),
                                     params={k: v.copy() for k, v in n.params.items()},
                                     quant=None if n.quant is None else n.quant.copy())
                 for n in self.nodes]
        return dataclasses.replace(self, nodes=nodes, shapes=dict(self.shapes),
                                   quant=dict(self.quant))

    def with_weights(self, weights: dict) -> "Graph":
        """A copy with new (weight, bias) for the named layers: e.g. the
        fine-tuned layers an engine reports, for export. The imported int8 codes of
        those layers no longer describe them: their `quant.weight_q`/`bias_q` become
        None (the scales stay, to re-quantize the new weights with)."""
        g = self.copy()
        for name, (w, b) in weights.items():
            n = g.node(name)
            n.params["weight"] = w
            n.params["bias"] = b
            if n.quant is not None:
                n.quant.weight_q = n.quant.bias_q = None
        return g
