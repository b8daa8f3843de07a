"""ONNX -> training IR (`Graph`).

How the import works, and why this way:

1. The file is parsed; anything that is not a complete ONNX model is refused with a
   `MedyateError` (not a model, truncated, several inputs or outputs, ...).
2. The one real input gets a static shape: a dynamic batch becomes 1, any other dynamic
   dimension must come from `input_shape` (the CLI's `--input-shape`).
3. Every tensor is classified as *constant* (initializers, Constant nodes, and any node
   whose inputs are all constant, plus Shape/Size, whose results are constant once
   shapes are static) or *activation* (depends on the input). Activation nodes whose op
   cannot be lowered are all collected and reported in ONE error.
4. The model is run once in onnxruntime on a zero input with every tensor exposed as an
   output. That single run gives the static shape of every activation tensor and the
   value of every folded constant (weights computed by Constant/Transpose/Cast chains,
   shape arithmetic feeding Reshape, ...), with onnxruntime's own semantics for every
   ONNX op and opset, instead of a second, partial implementation of them here.
5. Activation nodes are lowered to the canonical ops of `graph.py`, then peephole
   passes fold BatchNormalization (and constant per-channel affine ops) into the conv
   before it, fuse MatMul + Add into Gemm, and recognise the HardSwish / HardSigmoid
   patterns exporters emit (x * Clip(x + 3, 0, 6) / 6, x * HardSigmoid(x)).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import MedyateError
from .graph import CANONICAL_OPS, Graph, Node

# Ops that may appear on the activation path (before lowering).
_ACTIVATION_OPS = {
    "Conv", "Gemm", "MatMul", "BatchNormalization", "Relu", "Clip", "HardSigmoid",
    "HardSwish", "Add", "Sub", "Mul", "Div", "GlobalAveragePool", "AveragePool",
    "MaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Softmax",
    "Identity", "Dropout",
}
# Ops that only depend on the shape of their input, hence constant once shapes are static.
_SHAPE_ONLY_OPS = {"Shape", "Size"}


@dataclass
class _Pre:
    """A node during lowering: like `Node`, but it may also be a transient op that
    the passes fuse away (BatchNormalization, ConstAdd/ConstMul with the constant in
    params["c"]); "_op"/"_why" attrs name the original op and the reason for an error."""
    name: str
    op: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


def _err_list(title: str, items: list[str]) -> MedyateError:
    return MedyateError(title + "\n" + "\n".join(f"  - {i}" for i in items))


# --------------------------------------------------------------------------- parsing

def _parse(path: str):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise MedyateError(f"cannot read model file {path}: {exc.strerror or exc}") from None
    sha = hashlib.sha256(data).hexdigest()
    if not data:
        raise MedyateError(f"{path} is empty: not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise MedyateError(
            f"{path} is not a valid ONNX model (cannot decode it: {exc}); "
            "is the file truncated or of another format?") from None
    g = model.graph
    if model.ir_version <= 0 or not model.opset_import or (not g.node and not g.output):
        raise MedyateError(f"{path} is not an ONNX model (no ir_version, opset or graph)")
    if not g.output or not g.input:
        raise MedyateError(f"{path}: the ONNX graph has no input or no output; "
                           "is the file truncated?")
    # Every tensor a node reads must be defined somewhere: a truncated file that still
    # decodes usually loses the tail of its node list or initializers.
    defined = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    for n in g.node:
        defined.update(n.output)
    missing = [f"{n.name or n.op_type}: input '{i}'" for n in g.node for i in n.input
               if i not in defined]
    missing += [f"graph output '{o.name}'" for o in g.output if o.name not in defined]
    if missing:
        raise _err_list(f"{path}: the ONNX graph is incomplete (truncated file?); "
                        "undefined tensors:", missing[:20])
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in g.initializer):
        from onnx.external_data_helper import load_external_data_for_model
        try:
            load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
        except Exception as exc:  # missing/short side file: the user must fix the files
            raise MedyateError(f"{path}: cannot load external weight data: {exc}") from None
    return model, sha


def _input_shape(model, path, input_shape):
    import onnx

    g = model.graph
    inits = {t.name for t in g.initializer}
    real = [i for i in g.input if i.name not in inits]
    if len(real) != 1:
        names = ", ".join(i.name for i in real) or "none"
        raise MedyateError(f"{path}: the model must have exactly one input tensor, "
                           f"it has {len(real)} ({names})")
    inp = real[0]
    tt = inp.type.tensor_type
    if not inp.type.HasField("tensor_type"):
        raise MedyateError(f"{path}: input '{inp.name}' is not a tensor")
    if tt.elem_type != onnx.TensorProto.FLOAT:
        raise MedyateError(f"{path}: input '{inp.name}' has element type "
                           f"{onnx.TensorProto.DataType.Name(tt.elem_type)}; only float32 "
                           "models are supported")
    declared = None
    if tt.HasField("shape"):
        declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                    for d in tt.shape.dim]
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
        if declared is not None and len(shape) == len(declared) - 1:
            shape = (1,) + shape            # C,H,W given: batch is 1
        if declared is not None and len(shape) != len(declared):
            raise MedyateError(f"input shape {shape} has rank {len(shape)} but input "
                               f"'{inp.name}' has rank {len(declared)}")
        if shape[0] != 1:
            raise MedyateError(f"input shape {shape}: the batch dimension must be 1 "
                               "(training runs one sample at a time)")
        if any(v <= 0 for v in shape):
            raise MedyateError(f"input shape {shape}: every dimension must be positive")
        if declared is not None:
            bad = [i for i, (d, s) in enumerate(zip(declared, shape))
                   if i > 0 and d is not None and d != s]
            if bad:
                raise MedyateError(
                    f"input shape {shape} contradicts the static shape of input "
                    f"'{inp.name}' ({_fmt_dims(tt)}) in dimension(s) {bad}")
        return inp.name, shape
    if declared is None or not declared:
        raise MedyateError(f"input '{inp.name}' has no shape in the model; "
                           "give one with --input-shape, e.g. --input-shape 1,3,32,32")
    dyn = [i for i, d in enumerate(declared) if d is None and i > 0]
    if dyn:
        raise MedyateError(
            f"input '{inp.name}' has dynamic dimension(s) {dyn} (shape {_fmt_dims(tt)}); "
            "give a static shape with --input-shape, e.g. --input-shape 1,3,32,32")
    return inp.name, (1,) + tuple(declared[1:])


def _fmt_dims(tt) -> str:
    return "[" + ", ".join(d.dim_param or (str(d.dim_value) if d.dim_value else "?")
                           for d in tt.shape.dim) + "]"


# --------------------------------------------------------------------------- helpers

def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def _same_pads(in_hw, k, s, lower: bool):
    pads_b, pads_e = [], []
    for n, kk, ss in zip(in_hw, k, s):
        out = -(-n // ss)
        total = max((out - 1) * ss + kk - n, 0)
        small, big = total // 2, total - total // 2
        b, e = (big, small) if lower else (small, big)
        pads_b.append(b)
        pads_e.append(e)
    return (pads_b[0], pads_b[1], pads_e[0], pads_e[1])


def _window_attrs(a: dict, in_hw, kernel) -> tuple[tuple, tuple]:
    """Strides and (top, left, bottom, right) pads of a Conv or pooling node."""
    strides = tuple(a.get("strides", [1, 1]))
    auto = _s(a.get("auto_pad", "NOTSET"))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(in_hw, kernel, strides, auto == "SAME_LOWER")
    elif auto == "VALID":
        pads = (0, 0, 0, 0)
    else:
        p = list(a.get("pads", [0, 0, 0, 0]))
        pads = (p[0], p[1], p[2], p[3])
    return strides, pads


def _is_scalar(v, target, rtol=1e-6) -> bool:
    v = np.asarray(v)
    return v.size == 1 and abs(float(v.reshape(())) - target) <= rtol * max(1.0, abs(target))


# --------------------------------------------------------------------------- import

def load_onnx(path, input_shape: tuple | None = None) -> Graph:
    """Import an ONNX file into the training IR (see the module docstring).

    `input_shape`: the full NCHW shape (batch 1) or C,H,W; needed when the model's input
    has dynamic dimensions other than the batch. Raises `MedyateError` for every problem
    a user can fix (bad file, missing shape, unsupported nodes).
    """
    import onnx
    from onnx import numpy_helper

    path = os.fspath(path)
    model, sha = _parse(path)
    g = model.graph
    in_name, in_shape = _input_shape(model, path, input_shape)
    if len(g.output) != 1:
        raise MedyateError(f"{path}: the model must have exactly one output, it has "
                           f"{len(g.output)} ({', '.join(o.name for o in g.output)})")
    out_name = g.output[0].name

    # Unique, non-empty node names (ONNX names when present).
    names, seen = [], set()
    for i, n in enumerate(g.node):
        nm = n.name or f"{n.op_type}_{i}"
        while nm in seen:
            nm = f"{nm}_{i}"
        seen.add(nm)
        names.append(nm)

    # Constness by data flow.
    consts: dict[str, np.ndarray] = {}
    for t in g.initializer:
        try:
            consts[t.name] = numpy_helper.to_array(t)
        except Exception as exc:
            raise MedyateError(f"{path}: cannot read initializer '{t.name}': {exc}") from None
    const_names = set(consts) | {""}
    const_names.discard(in_name)
    act_nodes, unsupported = [], []
    for i, n in enumerate(g.node):
        is_const = (n.op_type == "Constant" or n.op_type in _SHAPE_ONLY_OPS
                    or all(x in const_names for x in n.input))
        if is_const and n.domain in ("", "ai.onnx"):
            const_names.update(n.output)
            continue
        act_nodes.append(i)
        if n.domain not in ("", "ai.onnx") or n.op_type not in _ACTIVATION_OPS:
            dom = f"{n.domain}." if n.domain not in ("", "ai.onnx") else ""
            unsupported.append(f"{names[i]} ({dom}{n.op_type})")
    if unsupported:
        raise _err_list(f"{path}: {len(unsupported)} unsupported node(s) "
                        f"(supported: {', '.join(sorted(_ACTIVATION_OPS))}):", unsupported)
    if out_name in const_names:
        raise MedyateError(f"{path}: the output '{out_name}' does not depend on the input")

    values = _run_all(model, path, in_name, in_shape, consts)
    shapes = {k: tuple(int(d) for d in v.shape) for k, v in values.items()}
    shapes[in_name] = in_shape
    for k in list(consts):
        values.setdefault(k, consts[k])

    def cval(t):
        return None if t == "" else values[t]

    # Tensors that are the output up to Identity/Dropout (removed later): a Softmax
    # writing one of them is still "at the output".
    out_alias, changed = {out_name}, True
    while changed:
        changed = False
        for n in g.node:
            if n.op_type in ("Identity", "Dropout") and n.output[0] in out_alias \
                    and n.input[0] not in out_alias:
                out_alias.add(n.input[0])
                changed = True

    pre, problems = [], []
    for i in act_nodes:
        n = g.node[i]
        try:
            pre.extend(_lower(n, names[i], _attrs(n), const_names, cval, shapes,
                              model_opset(model), out_alias))
        except _Unsupported as exc:
            problems.append(f"{names[i]} ({n.op_type}): {exc}")
    # The passes also run when some nodes failed, so that one error lists them all.
    pre = _passes(pre, shapes, in_name, out_name)
    problems += [f"{p.name} ({p.attrs.get('_op', p.op)}): "
                 f"{p.attrs.get('_why', 'cannot be lowered')}"
                 for p in pre if p.op not in CANONICAL_OPS]
    if problems:
        raise _err_list(f"{path}: {len(problems)} unsupported node(s):", problems)
    pre = _dead_code(pre, out_name)

    nodes = [Node(p.name, p.op, list(p.inputs), list(p.outputs), dict(p.attrs),
                  {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in p.params.items()})
             for p in pre]
    used = {in_name} | {t for nd in nodes for t in nd.inputs + nd.outputs}
    gshapes = {t: shapes[t] for t in used if t in shapes}
    name = g.name or os.path.splitext(os.path.basename(path))[0]
    return Graph(name=name, nodes=nodes, shapes=gshapes, input=in_name, output=out_name,
                 source_sha256=sha)


def model_opset(model) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def _run_all(model, path, in_name, in_shape, consts) -> dict[str, np.ndarray]:
    """Run the model once on zeros with every node output exposed; returns all values."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
                have.add(o)
    # Fix the input's declared shape so shape arithmetic sees the static shape.
    for i in m.graph.input:
        if i.name == in_name:
            del i.type.tensor_type.shape.dim[:]
            for d in in_shape:
                i.type.tensor_type.shape.dim.add().dim_value = d
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(m.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        outs = sess.run(None, {in_name: np.zeros(in_shape, np.float32)})
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MedyateError(f"{path}: onnxruntime cannot evaluate the model with input "
                           f"shape {in_shape}: {msg}") from None
    return {o.name: np.asarray(v) for o, v in zip(sess.get_outputs(), outs)}


class _Unsupported(Exception):
    pass


def _lower(n, name, a, const_names, cval, shapes, opset, out_alias) -> list[_Pre]:
    """One activation ONNX node -> zero or more pre-canonical nodes."""
    op = n.op_type
    ins = list(n.input)
    outs = [o for o in n.output]
    x = ins[0] if ins else ""
    y = outs[0]

    def isconst(t):
        return t in const_names

    if op in ("Identity", "Dropout"):
        # Inference semantics: Dropout passes x through; its mask output is dropped.
        return [_Pre(name, "Identity", [x], [y])]

    if op == "Conv":
        if isconst(x) or not all(isconst(t) for t in ins[1:]):
            raise _Unsupported("only convolutions with constant weights are supported")
        w = cval(ins[1]).astype(np.float64)
        if w.ndim != 4:
            raise _Unsupported(f"only 2-D convolutions are supported (weight rank {w.ndim})")
        O, Ig, kh, kw = w.shape
        C = shapes[x][1]
        group = int(a.get("group", 1))
        why = []
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            why.append(f"dilation {list(a['dilations'])} (only 1 is supported)")
        if group != 1 and not (group == C and Ig == 1):
            why.append(f"grouped convolution with group={group} on {C} channels "
                       "(only group 1 and depthwise are supported)")
        if kh > 7 or kw > 7:
            why.append(f"kernel {kh}x{kw} (at most 7x7 is supported)")
        if why:
            raise _Unsupported("; ".join(why))
        b = cval(ins[2]).astype(np.float64) if len(ins) > 2 and ins[2] else np.zeros(O)
        strides, pads = _window_attrs(a, shapes[x][2:], (kh, kw))
        return [_Pre(name, "Conv", [x], [y],
                     {"strides": strides, "pads": pads, "group": group, "kernel": (kh, kw)},
                     {"weight": w, "bias": b})]

    if op == "BatchNormalization":
        if int(a.get("training_mode", 0)):
            raise _Unsupported("training-mode BatchNormalization")
        if not all(isconst(t) for t in ins[1:5]):
            raise _Unsupported("BatchNormalization statistics must be constant")
        scale, bias, mean, var = (cval(t).astype(np.float64) for t in ins[1:5])
        eps = float(a.get("epsilon", 1e-5))
        k = scale / np.sqrt(var + eps)
        return [_Pre(name, "BatchNormalization", [x], [y], {},
                     {"scale": k, "shift": bias - mean * k})]

    if op == "Gemm":
        if isconst(x) or not isconst(ins[1]) or (len(ins) > 2 and ins[2] and not isconst(ins[2])):
            raise _Unsupported("Gemm needs a variable A and constant B (and C)")
        B = cval(ins[1]).astype(np.float64)
        W = B.T if not int(a.get("transB", 0)) else B       # -> [O, I]
        W = W * float(a.get("alpha", 1.0))
        O, I = W.shape
        bias = np.zeros(O)
        if len(ins) > 2 and ins[2]:
            c = cval(ins[2]).astype(np.float64) * float(a.get("beta", 1.0))
            if c.size not in (1, O):
                raise _Unsupported(f"bias C of shape {c.shape} is not per-output")
            bias = np.broadcast_to(c.reshape(-1), (O,)).copy()
        res = []
        src = x
        if int(a.get("transA", 0)):
            if shapes[x] != (I, 1):
                raise _Unsupported(f"transA with input shape {shapes[x]}")
            src = f"{x}__transA"
            shapes[src] = (1, I)
            res.append(_Pre(f"{name}_transA", "Reshape", [x], [src], {"shape": (1, I)}))
        elif shapes[x] != (1, I):
            raise _Unsupported(f"input shape {shapes[x]} (expected (1, {I}))")
        res.append(_Pre(name, "Gemm", [src], [y], {}, {"weight": W, "bias": bias}))
        return res

    if op == "MatMul":
        if isconst(x) and not isconst(ins[1]):
            raise _Unsupported("constant left operand")
        if not isconst(ins[1]):
            raise _Unsupported("MatMul of two activations")
        B = cval(ins[1]).astype(np.float64)
        if B.ndim != 2 or len(shapes[x]) != 2 or shapes[x][0] != 1:
            raise _Unsupported(f"only [1, I] x [I, O] is supported "
                               f"(got {shapes[x]} x {B.shape})")
        return [_Pre(name, "Gemm", [x], [y], {},
                     {"weight": B.T.copy(), "bias": np.zeros(B.shape[1])})]

    if op == "Relu":
        return [_Pre(name, "Relu", [x], [y])]

    if op == "Clip":
        if opset < 11:
            lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
        else:
            for t in ins[1:]:
                if t and not isconst(t):
                    raise _Unsupported("Clip bounds must be constant")
            lo = float(cval(ins[1]).reshape(())) if len(ins) > 1 and ins[1] else -np.inf
            hi = float(cval(ins[2]).reshape(())) if len(ins) > 2 and ins[2] else np.inf
        lo, hi = float(lo), float(hi)
        if lo == 0.0 and hi == np.inf:
            return [_Pre(name, "Relu", [x], [y])]
        return [_Pre(name, "Clip", [x], [y], {"min": lo, "max": hi})]

    if op == "HardSigmoid":
        return [_Pre(name, "HardSigmoid", [x], [y],
                     {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))})]

    if op == "HardSwish":
        return [_Pre(name, "HardSwish", [x], [y])]

    if op in ("Add", "Sub", "Mul", "Div"):
        a0, a1 = ins[0], ins[1]
        c0, c1 = isconst(a0), isconst(a1)
        if not c0 and not c1:
            if op in ("Add", "Mul"):
                return [_Pre(name, op, [a0, a1], [y])]
            raise _Unsupported(f"{op} of two activations")
        # One constant operand: kept as an affine op for the fusion passes.
        var, cst = (a1, a0) if c0 else (a0, a1)
        if c0 and op in ("Sub", "Div"):
            raise _Unsupported(f"constant {'minus' if op == 'Sub' else 'divided by'} activation")
        c = cval(cst).astype(np.float64)
        if op == "Sub":
            c, kind = -c, "Add"
        elif op == "Div":
            c, kind = 1.0 / c, "Mul"
        else:
            kind = op
        return [_Pre(name, "Const" + kind, [var], [y],
                     {"_op": op, "_why": f"{op} with a constant that cannot be folded "
                                         "into the Conv/Gemm before it"},
                     {"c": c})]

    if op == "GlobalAveragePool":
        if len(shapes[x]) != 4:
            raise _Unsupported(f"input rank {len(shapes[x])}")
        return [_Pre(name, "GlobalAveragePool", [x], [y])]

    if op in ("AveragePool", "MaxPool"):
        if len(shapes[x]) != 4:
            raise _Unsupported(f"input rank {len(shapes[x])} (only 2-D pooling)")
        if len(outs) > 1 and outs[1]:
            raise _Unsupported("MaxPool indices output")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise _Unsupported("dilation != 1")
        k = tuple(a["kernel_shape"])
        strides, pads = _window_attrs(a, shapes[x][2:], k)
        # ceil_mode only matters when it changes the output size; compare with floor.
        H, W = shapes[x][2:]
        floor_hw = tuple((n + pb + pe - kk) // s + 1 for n, pb, pe, kk, s in
                         zip((H, W), pads[:2], pads[2:], k, strides))
        if tuple(shapes[y][2:]) != floor_hw:
            raise _Unsupported("ceil_mode that changes the output size")
        attrs = {"kernel": k, "strides": strides, "pads": pads}
        if op == "AveragePool":
            attrs["count_include_pad"] = int(a.get("count_include_pad", 0))
        return [_Pre(name, op, [x], [y], attrs)]

    if op in ("Flatten", "Reshape", "Squeeze", "Unsqueeze"):
        for t in ins[1:]:
            if t and not isconst(t):
                raise _Unsupported("the target shape must be constant")
        kind = "Flatten" if op == "Flatten" else "Reshape"
        attrs = {"shape": shapes[y]}
        if op == "Flatten":
            attrs["axis"] = int(a.get("axis", 1))
        return [_Pre(name, kind, [x], [y], attrs)]

    if op == "Concat":
        if any(isconst(t) for t in ins):
            raise _Unsupported("Concat with a constant input")
        axis = int(a["axis"])
        rank = len(shapes[y])
        return [_Pre(name, "Concat", ins, [y], {"axis": axis % rank})]

    if op == "Softmax":
        rank = len(shapes[x])
        axis = int(a.get("axis", -1 if opset >= 13 else 1)) % rank
        if opset < 13 and axis != rank - 1 and not (rank == 2 and axis == 1):
            raise _Unsupported("opset < 13 Softmax over flattened trailing axes")
        if y not in out_alias:
            raise _Unsupported("Softmax is only supported as the graph's output")
        return [_Pre(name, "Softmax", [x], [y], {"axis": axis})]

    raise _Unsupported("op not supported")


# --------------------------------------------------------------------------- passes

def _consumers(pre, t):
    return [p for p in pre if t in p.inputs]


def _passes(pre: list[_Pre], shapes, in_name, out_name) -> list[_Pre]:
    pre = _remove_identity(pre, in_name, out_name)
    pre = _fuse_hardswish(pre, shapes, out_name)
    pre = _fold_into_producer(pre, shapes, out_name)
    pre = _mul_broadcast(pre, shapes)
    return pre


def _rename(pre, old, new):
    for p in pre:
        p.inputs = [new if t == old else t for t in p.inputs]
        p.outputs = [new if t == old else t for t in p.outputs]


def _remove_identity(pre, in_name, out_name):
    out = []
    for p in pre:
        if p.op != "Identity":
            out.append(p)
            continue
        src, dst = p.inputs[0], p.outputs[0]
        if dst == out_name and src != in_name:
            # Keep the file's output name: rename the producer's output instead.
            _rename(out, src, dst)
            _rename(pre, src, dst)
        else:
            _rename(pre, dst, src)
            _rename(out, dst, src)
    return out


def _single_consumer(pre, t, out_name):
    cs = _consumers(pre, t)
    return cs[0] if len(cs) == 1 and t != out_name else None


def _fuse_hardswish(pre, shapes, out_name):
    """Exporter patterns -> HardSigmoid / HardSwish.

    Clip(x + 3, 0, 6) * (1/6)              -> HardSigmoid(alpha=1/6, beta=0.5)
    x * Clip(x + 3, 0, 6) * (1/6)          -> HardSwish  (Mul before the division)
    x * HardSigmoid(x) (alpha 1/6, beta .5) -> HardSwish
    (division by 6 is already a ConstMul by 1/6 here; Relu6 is Clip(0, 6))
    """
    changed = True
    while changed:
        changed = False
        for clip in pre:
            if not (clip.op == "Clip" and clip.attrs["min"] == 0.0 and clip.attrs["max"] == 6.0):
                continue
            add = next((p for p in pre if clip.inputs[0] in p.outputs), None)
            if not (add and add.op == "ConstAdd" and _is_scalar(add.params["c"], 3.0)
                    and _single_consumer(pre, add.outputs[0], out_name) is clip):
                continue
            x = add.inputs[0]
            nxt = _single_consumer(pre, clip.outputs[0], out_name)
            if nxt is None:
                continue
            if nxt.op == "ConstMul" and _is_scalar(nxt.params["c"], 1 / 6):
                hs = _Pre(nxt.name, "HardSigmoid", [x], list(nxt.outputs),
                          {"alpha": 1 / 6, "beta": 0.5})
                pre = [hs if p is nxt else p for p in pre if p is not add and p is not clip]
                changed = True
                break
            if nxt.op == "Mul" and x in nxt.inputs and clip.outputs[0] in nxt.inputs:
                div = _single_consumer(pre, nxt.outputs[0], out_name)
                if div and div.op == "ConstMul" and _is_scalar(div.params["c"], 1 / 6):
                    hs = _Pre(div.name, "HardSwish", [x], list(div.outputs))
                    drop = (add, clip, nxt)
                    pre = [hs if p is div else p for p in pre if not any(p is d for d in drop)]
                    changed = True
                    break
        if changed:
            continue
        for mul in pre:
            if mul.op != "Mul":
                continue
            for i in (0, 1):
                hsig = next((p for p in pre if mul.inputs[i] in p.outputs), None)
                other = mul.inputs[1 - i]
                if (hsig and hsig.op == "HardSigmoid" and hsig.inputs[0] == other
                        and abs(hsig.attrs["alpha"] - 1 / 6) < 1e-6
                        and abs(hsig.attrs["beta"] - 0.5) < 1e-6
                        and _single_consumer(pre, hsig.outputs[0], out_name) is mul):
                    hs = _Pre(mul.name, "HardSwish", [other], list(mul.outputs))
                    pre = [hs if p is mul else p for p in pre if p is not hsig]
                    changed = True
                    break
            if changed:
                break
    return pre


def _per_channel(c, shape, nch):
    """Constant `c` broadcast against an activation of `shape` -> per-channel vector of
    length nch (axis 1), or None if it varies along other axes."""
    c = np.asarray(c, np.float64)
    if c.size == 1:
        return np.full(nch, float(c.reshape(())))
    if c.ndim > len(shape):
        return None
    full = (1,) * (len(shape) - c.ndim) + c.shape
    if len(shape) < 2 or full[1] not in (1, nch) or any(d != 1 for i, d in enumerate(full) if i != 1):
        return None
    return np.broadcast_to(c.reshape(-1), (nch,)).copy() if full[1] == nch else np.full(nch, float(c.reshape(-1)[0]))


def _fold_into_producer(pre, shapes, out_name):
    """BatchNormalization and constant per-channel Add/Mul after a Conv or Gemm whose
    output feeds nothing else are folded into its weight and bias. A BatchNormalization
    with no such conv becomes a depthwise 1x1 Conv (same math, a canonical op)."""
    out = list(pre)
    i = 0
    while i < len(out):
        p = out[i]
        if p.op not in ("BatchNormalization", "ConstAdd", "ConstMul"):
            i += 1
            continue
        x, y = p.inputs[0], p.outputs[0]
        prod = next((q for q in out if x in q.outputs), None)
        nch = shapes[x][1] if len(shapes[x]) >= 2 else None
        if p.op == "BatchNormalization":
            k, s = p.params["scale"], p.params["shift"]
        elif nch is not None:
            v = _per_channel(p.params["c"], shapes[x], nch)
            if v is None or shapes[y] != shapes[x]:
                i += 1
                continue
            k, s = (np.ones(nch), v) if p.op == "ConstAdd" else (v, np.zeros(nch))
        else:
            i += 1
            continue
        if (prod is not None and prod.op in ("Conv", "Gemm")
                and _single_consumer(out, x, out_name) is p):
            w = prod.params["weight"]
            prod.params["weight"] = w * k.reshape((-1,) + (1,) * (w.ndim - 1))
            prod.params["bias"] = prod.params["bias"] * k + s
            prod.outputs = [y]
            out.pop(i)
            continue
        if p.op == "BatchNormalization":
            C = len(k)
            out[i] = _Pre(p.name, "Conv", [x], [y],
                          {"strides": (1, 1), "pads": (0, 0, 0, 0), "group": C,
                           "kernel": (1, 1)},
                          {"weight": k.reshape(C, 1, 1, 1), "bias": s})
        i += 1
    return out


def _mul_broadcast(pre, shapes):
    """Activation * activation must be squeeze-excite: x [1,C,H,W] * s [1,C,1,1];
    canonical input order is (x, s)."""
    for p in pre:
        if p.op == "Mul":
            a, b = p.inputs
            sa, sb = shapes[a], shapes[b]
            if len(sa) == 4 and len(sb) == 4 and sb[2:] == (1, 1) and sa[:2] == sb[:2]:
                continue
            if len(sa) == 4 and len(sb) == 4 and sa[2:] == (1, 1) and sa[:2] == sb[:2] \
                    and sb[2:] != (1, 1):
                p.inputs = [b, a]
                continue
            p.op, p.attrs["_op"] = "MulUnsupported", "Mul"
            p.attrs["_why"] = (f"only per-channel broadcast x{list(sa)} * s[1,C,1,1] "
                               f"is supported (got {list(sa)} * {list(sb)})")
        elif p.op == "Add":
            a, b = p.inputs
            if shapes[a] != shapes[b]:
                p.op, p.attrs["_op"] = "AddUnsupported", "Add"
                p.attrs["_why"] = (f"only same-shape Add is supported "
                                   f"(got {list(shapes[a])} + {list(shapes[b])})")
    return pre


def _dead_code(pre, out_name):
    need = {out_name}
    keep = []
    for p in reversed(pre):
        if any(o in need for o in p.outputs):
            keep.append(p)
            need.update(p.inputs)
    keep.reverse()
    for p in keep:
        p.outputs = [o for o in p.outputs if o][:1]
    return keep
