"""Numpy evaluation of the IR: the golden model.

Independent of the C engine on purpose: kernels, the host simulation and the device are
all checked against it. Tensors are NCHW; the computation runs in float64 and results
are returned as float32.

`quantized=True` evaluates a quantized graph as its QDQ file defines it: every tensor
with quantization parameters (`Graph.quant`) is rounded to its int8 codes and
dequantized again where it is produced (the input too); weights are the dequantized
int8 weights already. This is the float simulation onnxruntime runs for a QDQ model,
not the integer arithmetic of the int8 kernels (those are checked against their own
numpy twin of the fixed-point requantization).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import MedyateError
from .graph import Graph, Node


def _windows(x, kernel, strides, pads, fill):
    """x [N,C,H,W] -> windows [N,C,Ho,Wo,kh,kw] after padding with `fill`."""
    t, l, b, r = pads
    if any(pads):
        x = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=fill)
    kh, kw = kernel
    sh, sw = strides
    v = sliding_window_view(x, (kh, kw), axis=(2, 3))
    return v[:, :, ::sh, ::sw]


def conv2d(x, w, b, strides, pads, group):
    """Grouped 2-D convolution (cross-correlation, as ONNX), float64."""
    O, Ig, kh, kw = w.shape
    win = _windows(x, (kh, kw), strides, pads, 0.0)      # N, C, Ho, Wo, kh, kw
    N, C, Ho, Wo = win.shape[:4]
    win = win.reshape(N, group, C // group, Ho, Wo, kh, kw)
    wg = w.reshape(group, O // group, Ig, kh, kw)
    y = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return y.reshape(N, O, Ho, Wo) + b.reshape(1, O, 1, 1)


def _avgpool(x, a):
    k, s, p = a["kernel"], a["strides"], a["pads"]
    sums = _windows(x, k, s, p, 0.0).sum(axis=(-2, -1))
    if a.get("count_include_pad", 0):
        return sums / (k[0] * k[1])
    ones = np.ones((1, 1) + x.shape[2:])
    counts = _windows(ones, k, s, p, 0.0).sum(axis=(-2, -1))
    return sums / counts


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def run_node(node: Node, args: list[np.ndarray], out_shape=None) -> np.ndarray:
    """Forward of one canonical node on float64 arrays."""
    op, a, p = node.op, node.attrs, node.params
    x = args[0]
    if op == "Conv":
        return conv2d(x, p["weight"].astype(np.float64), p["bias"].astype(np.float64),
                      a["strides"], a["pads"], a["group"])
    if op == "Gemm":
        w = p["weight"].astype(np.float64)
        return x.reshape(x.shape[0], -1) @ w.T + p["bias"].astype(np.float64)
    if op == "Relu":
        return np.maximum(x, 0.0)
    if op == "Clip":
        return np.clip(x, a["min"], a["max"])
    if op == "HardSigmoid":
        return np.clip(a["alpha"] * x + a["beta"], 0.0, 1.0)
    if op == "HardSwish":
        return x * np.clip(x + 3.0, 0.0, 6.0) / 6.0
    if op == "Add":
        return x + args[1]
    if op == "Mul":
        return x * args[1]
    if op == "GlobalAveragePool":
        return x.mean(axis=(2, 3), keepdims=True)
    if op == "AveragePool":
        return _avgpool(x, a)
    if op == "MaxPool":
        return _windows(x, a["kernel"], a["strides"], a["pads"], -np.inf).max(axis=(-2, -1))
    if op in ("Flatten", "Reshape"):
        shape = out_shape if out_shape is not None else a["shape"]
        return x.reshape(shape)
    if op == "Concat":
        return np.concatenate(args, axis=a.get("axis", 1))
    if op == "Softmax":
        return _softmax(x, a.get("axis", -1))
    raise MedyateError(f"reference: op {op} of node {node.name} is not a canonical op")


def _fake_quant(q, v):
    codes = np.clip(np.round(v / q.scale) + q.zero_point, -128, 127)
    return (codes - q.zero_point) * q.scale


def evaluate_all(graph: Graph, x, quantized: bool = False) -> dict[str, np.ndarray]:
    """Every tensor of the graph (input included), float32, for input `x` (NCHW).

    `x` may have a batch other than 1; Flatten/Reshape keep the batch dimension then.
    `quantized`: round every quantized tensor to int8 (see the module docstring).
    """
    x = np.asarray(x, dtype=np.float64)
    if quantized and not graph.quant:
        raise MedyateError(f"reference: graph {graph.name} has no quantization parameters")
    if quantized and graph.input in graph.quant:
        x = _fake_quant(graph.quant[graph.input], x)
    want = graph.shapes.get(graph.input)
    if want is not None and x.shape[1:] != tuple(want[1:]):
        raise MedyateError(f"reference: input shape {x.shape} does not match the "
                           f"graph's {tuple(want)}")
    vals: dict[str, np.ndarray] = {graph.input: x}
    for n in graph.nodes:
        args = [vals[t] for t in n.inputs]
        out_shape = None
        if n.op in ("Flatten", "Reshape"):
            s = graph.shapes.get(n.outputs[0], n.attrs.get("shape"))
            out_shape = (x.shape[0],) + tuple(s[1:]) if s[0] == 1 else tuple(s)
        v = run_node(n, args, out_shape)
        if quantized and n.outputs[0] in graph.quant:
            v = _fake_quant(graph.quant[n.outputs[0]], v)
        vals[n.outputs[0]] = v
    return {k: v.astype(np.float32) for k, v in vals.items()}


def evaluate(graph: Graph, x, quantized: bool = False) -> np.ndarray:
    """The graph's output for input `x` (NCHW), float32."""
    return evaluate_all(graph, x, quantized)[graph.output]
