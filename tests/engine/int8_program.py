"""A numpy walk of an int8 `Program` with the int8 kernels' integer references,
op by op as the runtime walks it (values by tensor id, NHWC): the engine's
forward bit for bit (tests/engine/test_engine_int8.py checks it), with every
intermediate tensor at hand."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernels"))

from int8_refs import add_s8_ref, conv_s8_ref, global_avgpool_s8_ref  # noqa: E402
from kernel_refs import conv_ref  # noqa: E402

from medyate.planner import program as P  # noqa: E402


def program_values(prog: P.Program, x_codes: np.ndarray, given: dict | None = None):
    """(values, computed): {tensor id: what the next ops read} and {tensor id: what
    its op computed}. `given` ({tensor name: value [h, w, c]}) replaces a tensor's
    computed value for the ops after it: each op can then be run on another
    implementation's inputs."""
    given = given or {}
    t0 = prog.tensors[prog.input]
    v = {prog.input: given.get(t0.name, x_codes.reshape(t0.h, t0.w, -1))}
    computed = {prog.input: x_codes.reshape(t0.h, t0.w, -1)}
    for op in prog.ops:
        ty = prog.tensors[op.output]
        x = v[op.inputs[0]]
        s = op.s8
        if op.kind in (P.CONV2D, P.DEPTHWISE_CONV2D) and s is not None:
            y = conv_s8_ref(op.params, s.quant[0], x, s.weight_q, s.bias_q)
        elif op.kind == P.CONV2D:                 # the fp32 head on dequantized input
            y = conv_ref(op.params, x, op.weight, op.bias)
        elif op.kind == P.CLAMP:
            y = s.table[x.astype(np.int64) + 128]
        elif op.kind == P.ADD:
            y = add_s8_ref(s.quant[0], x, v[op.inputs[1]])
        elif op.kind == P.GLOBAL_AVGPOOL:
            y = global_avgpool_s8_ref(s.quant[0], x).reshape(1, 1, -1)
        elif op.kind == P.DEQUANTIZE:
            t = prog.tensors[op.inputs[0]]
            y = (x.astype(np.float32) - np.float32(t.zero)) * np.float32(t.scale)
        elif op.kind == P.RESHAPE:
            y = x
        else:
            raise AssertionError(f"op kind {op.kind_name} not in this reference")
        y = np.asarray(y).reshape(ty.h, ty.w, ty.c)
        computed[op.output] = y
        v[op.output] = given.get(ty.name, y)
    return v, computed


def numpy_program(prog: P.Program, x_codes: np.ndarray) -> np.ndarray:
    """Logits of an int8 Program from numpy integer references of each op."""
    v, _ = program_values(prog, x_codes)
    return v[prog.output].reshape(-1)
