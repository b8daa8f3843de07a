"""Code generation: a planned `Program` -> C sources (jinja2 templates in the
repository's top-level `codegen/templates/`).

The output is the same `mdy_model` the host engine fills through cffi, as C
initialisers, printed from the same table (`planner.model_table`): `model.c`
(weights, int8 parameters, tables, arena) and `model_config.h`.
"""
from __future__ import annotations

import math
from pathlib import Path

import jinja2
import numpy as np

from .. import __version__
from ..planner.arena import NO_OFFSET
from ..planner.kernel_set import kernels_called
from ..planner.model_table import CArray, Ref, model_table, public
from ..planner.program import NONE, Program

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


def _c_int(v: int) -> str:
    v = int(v)
    if v == -(1 << 31):
        return "(-2147483647 - 1)"      # the literal 2147483648 would be a long
    return f"{v}u" if v >= (1 << 31) else str(v)


def _body(a: CArray, per_line: int = 8) -> str:
    fmt = c_float if a.ctype == "float" else _c_int
    vals = [fmt(v) for v in a.data.tolist()]
    return "\n".join("    " + ", ".join(vals[i:i + per_line]) + ","
                     for i in range(0, len(vals), per_line))


# Fields whose all-ones value is a sentinel of medyate.h, printed by name.
_OFFSET_FIELDS = {"offset", "grad_offset", "saved_offset", "scratch_offset", "bias_grad_offset"}
_INDEX_FIELDS = {"input", "layer"}


def c_init(v, name: str = "") -> str:
    """One value of the model table as a C initialiser (designated for structs)."""
    if isinstance(v, Ref):
        return str(v)
    if v is None:
        return "0"
    if isinstance(v, dict):
        return "{ " + ", ".join(f".{k} = {c_init(x, k)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "{ " + ", ".join(c_init(x, name) for x in v) + " }"
    if isinstance(v, float):
        return c_float(v)
    if name in _OFFSET_FIELDS and v == NO_OFFSET:
        return "MDY_NO_OFFSET"
    if name in _INDEX_FIELDS and v == NONE:
        return "MDY_NONE"
    if name == "hash":
        return f"0x{int(v):08x}u"
    return _c_int(v)


def render(program: Program, source: str = "") -> dict[str, str]:
    """File name -> text."""
    plan = program.memory
    table = model_table(program)
    arrays = [dict(symbol=a.symbol, ctype=a.ctype, const=a.const, size=max(1, a.data.size),
                   body=_body(a), comment=a.comment) for a in table.arrays]
    structs = [dict(symbol=st.symbol, ctype=st.ctype, n=len(st.items), comment=st.comment,
                    body=",\n    ".join(c_init(item) for item in st.items))
               for st in table.structs]
    tensors = [dict(name=t["_name"], init=c_init(public(t))) for t in table.tensors]
    ops = [dict(index=i, name=o["_name"], kind_name=o["_kind_name"], init=c_init(public(o)))
           for i, o in enumerate(table.ops)]
    layers = [dict(name=l["_name"], init=c_init(public(l))) for l in table.layers]
    model = {k: c_init(v, k) for k, v in table.model.items()}
    model["arena_size"] = f"{max(plan.arena_size, 16)}u"
    _, c, h, w = program.input_shape if len(program.input_shape) == 4 else (1, program.input_shape[1], 1, 1)
    ctx = dict(version=__version__, source=source or program.name, header=HEADER,
               hash=table.model["hash"], budget=plan.budget_elements, precision=program.precision,
               arrays=arrays, structs=structs, tensors=tensors, ops=ops, layers=layers,
               model=model, classes=program.classes, max_selected=plan.max_selected,
               arena_size=max(plan.arena_size, 16), name=program.name.replace('"', "'"),
               input_h=h, input_w=w, input_c=c, n_layers=len(layers),
               sample_buffer_bytes=(0 if program.tensors[program.input].offset is not None
                                    else program.tensors[program.input].nbytes),
               trainable_bytes=table.trainable_bytes, frozen_bytes=table.frozen_bytes,
               kernels=kernels_called(program))
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
