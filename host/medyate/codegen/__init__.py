"""Code generation: a planned `Program` -> C sources (jinja2 templates in the
repository's top-level `codegen/templates/`).

The output is the same `mdy_model` the host engine fills through cffi, as C
initialisers: `model.c` (weights, tables, arena) and `model_config.h`.
"""
from __future__ import annotations

import math
from pathlib import Path

import jinja2
import numpy as np

from .. import __version__
from ..planner.arena import NO_OFFSET
from ..planner.program import (AVGPOOL, CLAMP, HARDSIGMOID, MAXPOOL, NONE, WEIGHTED, Program)

TEMPLATES = Path(__file__).resolve().parents[3] / "codegen" / "templates"
HEADER = "model_config.h"


def c_float(v: float) -> str:
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    if math.isnan(v):
        raise ValueError("NaN weight")
    s = f"{float(np.float32(v)):.9g}"
    if "e" not in s and "." not in s:
        s += ".0"
    return s + "f"


def _body(arr: np.ndarray, per_line: int = 8) -> str:
    vals = [c_float(v) for v in np.asarray(arr, dtype=np.float32).ravel()]
    return "\n".join("    " + ", ".join(vals[i:i + per_line]) + ","
                     for i in range(0, len(vals), per_line))


def _off(v) -> str:
    return "MDY_NO_OFFSET" if v is None else f"{v}u"


def render(program: Program, source: str = "") -> dict[str, str]:
    """File name -> text."""
    plan = program.memory
    if plan is None:
        raise ValueError("program has no arena plan: call planner.arena.plan_arena first")
    trainable_ops = {l.op for l in program.layers}
    weights, ops = [], []
    trainable_bytes = frozen_bytes = 0
    for i, op in enumerate(program.ops):
        entry = dict(index=i, name=op.name, kind=op.kind, kind_name=op.kind_name,
                     in0=op.inputs[0], in1=op.inputs[1] if len(op.inputs) > 1 else "MDY_NONE",
                     output=op.output, layer="MDY_NONE" if op.layer is None else op.layer,
                     saved_offset=_off(op.saved_offset), acc0=op.grad_accumulate[0],
                     acc1=op.grad_accumulate[1], params=None, union=None,
                     weight="0", bias="0")
        if op.kind in WEIGHTED:
            const = i not in trainable_ops
            for part, arr in (("w", op.weight), ("b", op.bias)):
                sym = f"mdy_{'weight' if part == 'w' else 'bias'}_{i}"
                weights.append(dict(symbol=sym, size=arr.size, const=const, body=_body(arr),
                                    comment=f"{op.name} {'weight' if part == 'w' else 'bias'} "
                                            f"{list(arr.shape)}{' (trainable)' if not const else ''}"))
            nbytes = 4 * (op.weight.size + op.bias.size)
            if const:
                frozen_bytes += nbytes
            else:
                trainable_bytes += nbytes
            entry.update(weight=f"mdy_weight_{i}", bias=f"mdy_bias_{i}", union="conv",
                         params=list(op.params.items()))
        elif op.kind in (AVGPOOL, MAXPOOL):
            entry.update(union="pool", params=list(op.params.items()))
        elif op.kind == CLAMP:
            entry.update(union="clamp", params=[("lo", c_float(op.params["lo"])),
                                                ("hi", c_float(op.params["hi"]))])
        elif op.kind == HARDSIGMOID:
            entry.update(union="hsig", params=[("alpha", c_float(op.params["alpha"])),
                                               ("beta", c_float(op.params["beta"]))])
        ops.append(entry)
    tensors = [dict(name=t.name, offset=_off(t.offset), grad_offset=_off(t.grad_offset),
                    h=t.h, w=t.w, c=t.c) for t in program.tensors]
    layers = [dict(name=l.name, op=l.op, train_bias=int(l.train_bias), channels=l.channels,
                   slice_size=l.slice_size, map_size=l.map_size, weight=f"mdy_weight_{l.op}",
                   bias=f"mdy_bias_{l.op}", bias_grad_offset=_off(l.bias_grad_offset))
              for l in program.layers]
    _, c, h, w = program.input_shape if len(program.input_shape) == 4 else (1, program.input_shape[1], 1, 1)
    ctx = dict(version=__version__, source=source or program.name, header=HEADER,
               hash=program.hash32(plan.budget_elements), budget=plan.budget_elements,
               weights=weights, tensors=tensors, ops=ops, layers=layers,
               input=program.input, output=program.output, classes=program.classes,
               arena_size=max(plan.arena_size, 16), pool_offset=plan.pool_offset,
               pool_size=plan.pool_size, max_selected=plan.max_selected,
               stats_offset=plan.stats_offset, sel_offset=plan.sel_offset,
               name=program.name.replace('"', "'"), input_h=h, input_w=w, input_c=c,
               n_layers=len(layers), trainable_bytes=trainable_bytes, frozen_bytes=frozen_bytes)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             undefined=jinja2.StrictUndefined, trim_blocks=False,
                             keep_trailing_newline=True)
    return {"model.c": env.get_template("model.c.j2").render(**ctx),
            HEADER: env.get_template("model.h.j2").render(**ctx)}


def generate(program: Program, out_dir, source: str = "") -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render(program, source).items():
        p = out / name
        p.write_text(text)
        paths.append(p)
    return paths


assert NO_OFFSET == 0xFFFFFFFF and NONE == 0xFFFF  # the C header's sentinels
