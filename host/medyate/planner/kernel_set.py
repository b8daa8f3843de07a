"""The large kernels a planned program calls: what its device image links.

The C runtime dispatches on each op's kind and type at run time, so an image
links every kernel unless it is told which ones its model calls
(firmware/src/runtime/mdy_kernel_set.h). The rule mirrors the runtime's:

- forward: every weighted op, in its output's type (int8 when the output is);
- input gradient: every weighted op the backward crosses (above the deepest
  trainable op) whose input has a planned gradient, in the op's type;
- weight gradient: every trainable layer with selectable channels, in its
  input's type (the saved maps are int8 codes when the input is int8).

The names are the C header's MDY_K_* bits; codegen prints them into
model_config.h.
"""
from __future__ import annotations

from .program import CONV2D, DEPTHWISE_CONV2D, FULLY_CONNECTED, S8, Program

_KERNEL = {CONV2D: "CONV2D_NHWC", DEPTHWISE_CONV2D: "DEPTHWISE_CONV2D_NHWC",
           FULLY_CONNECTED: "FULLY_CONNECTED"}


def _name(kind: int, dtype: int, phase: str = "") -> str:
    return f"MDY_K_{_KERNEL[kind]}_{'S8' if dtype == S8 else 'F32'}{phase}"


def kernels_called(program: Program) -> list[str]:
    """MDY_K_* names of the kernels `program`'s ops can call, sorted."""
    t = program.tensors
    deepest = program.deepest_trainable_op
    called = set()
    for i, op in enumerate(program.ops):
        if op.kind not in _KERNEL:
            continue
        dtype = t[op.output].dtype
        called.add(_name(op.kind, dtype))
        if i > deepest and t[op.inputs[0]].grad_offset is not None:
            called.add(_name(op.kind, dtype, "_IGRAD"))
    for layer in program.layers:
        if layer.channels > 0:      # a bias-only layer has none: no weight gradient
            op = program.ops[layer.op]
            called.add(_name(op.kind, t[op.inputs[0]].dtype, "_WGRAD"))
    return sorted(called)
