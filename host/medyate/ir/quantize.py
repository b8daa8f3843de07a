"""Float ONNX -> QDQ int8 ONNX with onnxruntime's own post-training quantizer, and the
check that a quantized graph is int8 from end to end.

Quantization is not reimplemented here: `quantize_model` calls
`onnxruntime.quantization.quantize_static` in QDQ format with the settings the int8
path supports (int8 activations, per tensor; int8 symmetric weights, per output
channel), calibrated (min/max) on samples of the user's training data. What this
module adds is the check of the calibration set, and of the result (`require_int8`).

Ops that cannot be int8 (policy, documented in docs/ARCHITECTURE.md): the int8 path
refuses them, naming the node, instead of running them in fp32 between a dequantize and
a quantize. `require_int8` lists every node whose input or output tensor has no int8
parameters, or whose weights are not int8; import itself never refuses a partly
quantized model, so its float view stays usable for the fp32 path.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from ..errors import MedyateError
from .graph import Graph

MIN_CALIBRATION_SAMPLES = 16


class _Reader:
    """A CalibrationDataReader over samples [N, C, H, W], one sample per call."""

    def __init__(self, name, x):
        self._name, self._x, self._i = name, x, 0

    def get_next(self):
        if self._i >= len(self._x):
            return None
        self._i += 1
        return {self._name: self._x[self._i - 1:self._i]}

    def rewind(self):
        self._i = 0


def check_calibration(x, input_shape, min_samples: int = MIN_CALIBRATION_SAMPLES) -> np.ndarray:
    """The calibration samples as float32 [N, C, H, W], or an error saying what is wrong."""
    x = np.asarray(x)
    want = tuple(input_shape[1:])
    if x.ndim != len(input_shape) or tuple(x.shape[1:]) != want:
        raise MedyateError(f"calibration data of shape {list(x.shape)} does not match the "
                           f"model input [N, {', '.join(map(str, want))}]")
    if len(x) < min_samples:
        raise MedyateError(f"calibration set too small: {len(x)} sample(s), at least "
                           f"{min_samples} are needed for activation ranges to mean anything")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise MedyateError("calibration data contains NaN or infinite values")
    if np.all(x == x[:1]):
        raise MedyateError(f"calibration set is constant: all {len(x)} samples are the "
                           "same image, so activation ranges would be degenerate")
    return x


def quantize_model(src, dst, x_calib, max_samples: int = 256,
                   min_samples: int = MIN_CALIBRATION_SAMPLES) -> None:
    """Quantize the float ONNX model `src` to the QDQ model `dst`, calibrated on the
    first `max_samples` of `x_calib` (e.g. a task's x_train)."""
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .onnx_import import load_onnx

    src = os.fspath(src)
    g = load_onnx(src)                       # the same checks as any import, first
    if g.is_quantized:
        raise MedyateError(f"{src} is already quantized")
    x = check_calibration(np.asarray(x_calib)[:max_samples], g.shapes[g.input], min_samples)
    m = onnx.load(src)
    # Static batch 1 on the input, as the IR sees it, for onnxruntime's shape inference.
    inp = [i for i in m.graph.input if i.name == g.input][0]
    for d, v in zip(inp.type.tensor_type.shape.dim, g.shapes[g.input]):
        d.Clear()
        d.dim_value = v
    with tempfile.TemporaryDirectory() as tmp:
        fixed, pre = os.path.join(tmp, "fixed.onnx"), os.path.join(tmp, "pre.onnx")
        onnx.save(m, fixed)
        try:
            # onnxruntime's recommended pre-processing (shape inference, BatchNorm folding)
            quant_pre_process(fixed, pre, skip_symbolic_shape=True)
        except Exception:
            pre = fixed
        try:
            quantize_static(pre, os.fspath(dst), _Reader(g.input, x),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"WeightSymmetric": True,
                                           "ActivationSymmetric": False})
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MedyateError(f"onnxruntime could not quantize {src}: {msg}") from None
    # Give the quantized model the input/output dimensions of the original (a dynamic
    # batch, typically).
    q, orig = onnx.load(os.fspath(dst)), onnx.load(src)
    for new, old in ((q.graph.input, orig.graph.input), (q.graph.output, orig.graph.output)):
        types = {v.name: v.type for v in old}
        for v in new:
            if v.name in types:
                v.type.CopyFrom(types[v.name])
    onnx.save(q, os.fspath(dst))


def float_logits(graph: Graph) -> set[str]:
    """The head writing the graph output and the shape ops after it, when the logits
    have no int8 parameters: allowed, the head's int32 accumulator is dequantized to
    fp32 logits (a new head, ir/head.py)."""
    tail, t = [], graph.output
    while t not in graph.quant:
        n = graph.producer(t)
        if n is None:
            return set()
        tail.append(n.name)
        if n.op in ("Conv", "Gemm"):
            return set(tail)
        if n.op not in ("Flatten", "Reshape", "Softmax"):
            return set()
        t = n.inputs[0]
    return set()


def int8_problems(graph: Graph) -> list[str]:
    """Why `graph` cannot run on the int8 path, one line per node (empty: it can)."""
    if not graph.is_quantized:
        return [f"the model {graph.name} is not quantized (no QuantizeLinear/"
                "DequantizeLinear or QLinear* nodes)"]
    q = graph.quant
    fl = float_logits(graph)
    fl_tensors = {graph.node(n).outputs[0] for n in fl}
    out = []
    for n in graph.nodes:
        for t in n.inputs:
            if t in q or t in fl_tensors:
                continue
            prod = graph.producer(t)
            fused = (n.op in ("Relu", "Clip") and prod is not None
                     and prod.op in ("Conv", "Gemm", "Add")
                     and len(graph.consumers(t)) == 1)
            if not fused:
                out.append(f"{n.name} ({n.op}): input '{t}' has no int8 quantization")
        if graph.output_quant(n) is None and n.name not in fl:
            cs = graph.consumers(n.outputs[0])
            if not (n.op in ("Conv", "Gemm", "Add") and len(cs) == 1
                    and cs[0].op in ("Relu", "Clip")):
                out.append(f"{n.name} ({n.op}): output '{n.outputs[0]}' has no int8 "
                           "quantization")
        if n.op in ("Conv", "Gemm") and (n.quant is None or n.quant.weight_q is None):
            out.append(f"{n.name} ({n.op}): weights are not int8")
    return out


def require_int8(graph: Graph) -> None:
    """Raise a MedyateError naming every node that keeps `graph` off the int8 path."""
    probs = int8_problems(graph)
    if probs:
        raise MedyateError(f"{graph.name} cannot run in int8 ({len(probs)} problem(s); "
                           "quantize the whole model, or use --precision fp32):\n"
                           + "\n".join(f"  - {p}" for p in probs))
