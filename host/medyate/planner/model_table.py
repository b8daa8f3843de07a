"""A planned `Program` as the C structures of `mdy_model` (medyate.h), once.

`model_table` returns every array the model points to (weights, biases, int8
scales, multipliers, tables), every static parameter struct, and the field
values of each `mdy_tensor`, `mdy_op` and `mdy_layer` and of `mdy_model`
itself. The host engine fills the structs from it through cffi and codegen
prints it as C initialisers, so the two back ends cannot disagree on what a
field holds.

A bias-only layer (Layer.bias_only) has a const weight array and a NULL
`mdy_layer.weight`: only its bias is in RAM.

Field values are ints, floats, `Ref(symbol)` (a pointer to an array or
struct of the table), None (NULL), lists (C arrays) or dicts (nested structs
and union members). A trainable layer's weight and bias arrays are the
Program's own numpy arrays (not copies): an engine that trains them in place
changes the Program.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .arena import NO_OFFSET
from .program import AVGPOOL, CLAMP, HARDSIGMOID, MAXPOOL, NONE, WEIGHTED, Program


class Ref(str):
    """A pointer to the table's array or struct of this symbol."""


@dataclass
class CArray:
    symbol: str
    ctype: str                 # float | int8_t | int32_t
    data: np.ndarray           # 1-D view of the values
    const: bool                # flash (True) or RAM (trained in place)
    comment: str = ""


@dataclass
class CStruct:
    symbol: str
    ctype: str                 # mdy_s8_conv_quant, mdy_s8_rescale, ...
    items: list[dict]          # one dict of fields per element (a C array if > 1)
    comment: str = ""


@dataclass
class ModelTable:
    arrays: list[CArray] = field(default_factory=list)
    structs: list[CStruct] = field(default_factory=list)
    tensors: list[dict] = field(default_factory=list)
    ops: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)
    model: dict = field(default_factory=dict)   # mdy_model without ops/tensors/layers
    trainable_bytes: int = 0                    # RAM weights (the layers' arrays)
    frozen_bytes: int = 0                       # flash weights


_CTYPE = {np.dtype(np.float32): "float", np.dtype(np.int8): "int8_t",
          np.dtype(np.int32): "int32_t"}


def _off(v) -> int:
    return NO_OFFSET if v is None else int(v)


def tensor_row(x) -> dict:
    """The mdy_tensor fields of one of the program's tensors."""
    return dict(offset=_off(x.offset), grad_offset=_off(x.grad_offset), h=x.h, w=x.w, c=x.c,
                dtype=x.dtype, scale=float(x.scale), zero=int(x.zero), _name=x.name)


def model_table(program: Program) -> ModelTable:
    plan = program.memory
    if plan is None:
        raise ValueError("program has no arena plan: call planner.arena.plan_arena first")
    t = ModelTable()
    trainable_ops = {l.op for l in program.layers}
    bias_only_ops = {l.op for l in program.layers if l.bias_only}

    def array(symbol, data, const, comment="") -> Ref:
        data = np.asarray(data)
        t.arrays.append(CArray(symbol, _CTYPE[data.dtype], data.reshape(-1), const, comment))
        return Ref(symbol)

    for x in program.tensors:
        t.tensors.append(tensor_row(x))

    for i, op in enumerate(program.ops):
        s8 = op.s8
        o = dict(kind=op.kind, input=[op.inputs[0], op.inputs[1] if len(op.inputs) > 1 else NONE],
                 output=op.output, layer=NONE if op.layer is None else op.layer,
                 saved_offset=_off(op.saved_offset), scratch_offset=_off(op.scratch_offset),
                 scratch_size=int(op.scratch_bytes), grad_accumulate=list(op.grad_accumulate),
                 weight=None, bias=None, w_scales=None, quant=None,
                 _name=op.name, _kind_name=op.kind_name)
        if op.kind in WEIGHTED:
            # A bias-only layer never writes its weights: they stay in flash
            # and only the bias is a RAM copy.
            w_const = i not in trainable_ops or i in bias_only_ops
            b_const = i not in trainable_ops
            w, b = (s8.weight_q, s8.bias_q) if s8 is not None else (op.weight, op.bias)
            o["weight"] = array(f"mdy_weight_{i}", w, w_const,
                                f"{op.name} weight {list(w.shape)}"
                                f"{'' if w_const else ' (trainable)'}")
            o["bias"] = array(f"mdy_bias_{i}", b, b_const, f"{op.name} bias [{b.size}]"
                              f"{'' if b_const else ' (trainable)'}")
            for nbytes, const in ((w.nbytes, w_const), (b.nbytes, b_const)):
                if const:
                    t.frozen_bytes += nbytes
                else:
                    t.trainable_bytes += nbytes
            o["p"] = {"conv": dict(op.params)}
        elif op.kind in (AVGPOOL, MAXPOOL):
            o["p"] = {"pool": dict(op.params)}
        elif op.kind == CLAMP:
            lo, hi = s8.act if s8 is not None else (0, 0)
            o["p"] = {"clamp": dict(lo=float(op.params["lo"]), hi=float(op.params["hi"]),
                                    act_min=lo, act_max=hi)}
        elif op.kind == HARDSIGMOID:
            lo, hi = s8.act if s8 is not None else (0, 0)
            o["p"] = {"hsig": dict(alpha=float(op.params["alpha"]), beta=float(op.params["beta"]),
                                   act_min=lo, act_max=hi)}
        if s8 is not None:
            if s8.w_scales is not None:
                o["w_scales"] = array(f"mdy_w_scales_{i}", s8.w_scales, True,
                                      f"{op.name} weight scales")
            if s8.table is not None:
                o["quant"] = array(f"mdy_table_{i}", s8.table, True, f"{op.name} int8 table")
            elif s8.struct:
                items = []
                for k, q in enumerate(s8.quant):
                    q = dict(q)
                    for f in ("multiplier", "shift"):
                        if isinstance(q.get(f), np.ndarray):   # per-channel arrays
                            q[f] = array(f"mdy_{f}_{i}", q[f].astype(np.int32), True,
                                         f"{op.name} requantization {f}s")
                    items.append(q)
                t.structs.append(CStruct(f"mdy_quant_{i}", s8.struct, items,
                                         f"{op.name} ({op.kind_name})"))
                o["quant"] = Ref(f"mdy_quant_{i}")
        t.ops.append(o)

    for l in program.layers:
        op = program.ops[l.op]
        bias_scales = None
        if op.s8 is not None:
            bias_scales = array(f"mdy_bias_scales_{l.op}", op.s8.bias_scales, True,
                                f"{l.name} bias scales (QAS)")
        t.layers.append(dict(op=l.op, train_bias=int(l.train_bias), channels=l.channels,
                             slice_size=l.slice_size, map_size=l.map_size,
                             map_words=l.map_words,
                             # no writable weight: mdy_layer_param_count is 0 for it
                             weight=None if l.bias_only else Ref(f"mdy_weight_{l.op}"),
                             bias=Ref(f"mdy_bias_{l.op}"), bias_scales=bias_scales,
                             bias_grad_offset=_off(l.bias_grad_offset), _name=l.name))

    t.model = dict(hash=program.hash32(plan.budget_elements), n_ops=len(program.ops),
                   n_tensors=len(program.tensors), n_layers=len(program.layers),
                   input=program.input, output=program.output, classes=program.classes,
                   arena_size=plan.arena_size, pool_offset=plan.pool_offset,
                   pool_size=plan.pool_size, max_selected=plan.max_selected,
                   stats_offset=plan.stats_offset, sel_offset=plan.sel_offset)
    return t


def public(fields: dict) -> dict:
    """The C fields of a record (without the `_`-prefixed annotations)."""
    return {k: v for k, v in fields.items() if not k.startswith("_")}


assert NO_OFFSET == 0xFFFFFFFF and NONE == 0xFFFF  # the C header's sentinels
