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
6. Quantized models (QDQ: QuantizeLinear/DequantizeLinear pairs; QOperator: QLinearConv,
   QLinearMatMul) keep their float view (the graph an fp32 engine runs: dequantized
   weights, Q/DQ pairs removed) and get their quantization parameters attached:
   `Graph.quant` per activation tensor, `Node.quant` (int8 weights, per-channel scales,
   int32 bias) per Conv/Gemm; see `graph.py`. A Q and the DQ reading its codes make
   one tensor; a DQ that reads codes with other parameters than their Q wrote them with
   (a re-quantization by reinterpretation) is refused, naming the node. Supported:
   int8 (uint8 converted exactly to int8) per-tensor activations; int8 symmetric
   weights, per output channel or per tensor. Refused with the node and the reason:
   asymmetric or uint8 weights, 16-bit or other-width types, per-channel activations.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import MedyateError
from .graph import CANONICAL_OPS, Graph, Node, QuantParams, WeightQuant

# Ops that may appear on the activation path (before lowering).
_ACTIVATION_OPS = {
    "Conv", "Gemm", "MatMul", "BatchNormalization", "Relu", "Clip", "HardSigmoid",
    "HardSwish", "Add", "Sub", "Mul", "Div", "GlobalAveragePool", "AveragePool",
    "MaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Softmax",
    "Identity", "Dropout",
    "QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
}
# Ops that only depend on the shape of their input, hence constant once shapes are static.
_SHAPE_ONLY_OPS = {"Shape", "Size"}
# The largest input the import evaluates (float32 elements, 64 MiB): a
# microcontroller's input is thousands of times smaller, and a hand-edited or
# corrupted dimension must be refused here, not by a failing (or, with memory
# overcommit, a swapping) allocation in the reference evaluation.
MAX_INPUT_ELEMENTS = 1 << 24


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
    if int(np.prod([int(d) for d in in_shape], dtype=object)) > MAX_INPUT_ELEMENTS:
        raise MedyateError(f"{path}: input '{in_name}' has shape {tuple(in_shape)}, more than "
                           f"{MAX_INPUT_ELEMENTS} elements (the import's limit)")
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
        a = consts[t.name]
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            # NaN/inf weights only ever train into NaN; refuse them by name.
            k = int(np.size(a) - np.isfinite(a).sum())
            raise MedyateError(f"{path}: initializer '{t.name}' holds {k} NaN or infinite "
                               f"value(s) (of {a.size})")
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
            if n.op_type in ("Identity", "Dropout", "QuantizeLinear", "DequantizeLinear") \
                    and n.output[0] in out_alias \
                    and n.input[0] not in out_alias:
                out_alias.add(n.input[0])
                changed = True

    # Constant DequantizeLinear outputs (quantized weights and biases): their codes.
    qconst = {}
    for i, n in enumerate(g.node):
        if n.op_type == "DequantizeLinear" and n.output[0] in const_names:
            zero = cval(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            qconst[n.output[0]] = _QConst(names[i], np.asarray(cval(n.input[0])),
                                          np.asarray(cval(n.input[1]), np.float64),
                                          None if zero is None else np.asarray(zero),
                                          int(_attrs(n).get("axis", 1)))

    pre, problems = [], []
    for i in act_nodes:
        n = g.node[i]
        try:
            pre.extend(_lower(n, names[i], _attrs(n), const_names, cval, shapes,
                              model_opset(model), out_alias, qconst))
        except _Unsupported as exc:
            problems.append(f"{names[i]} ({n.op_type}): {exc}")
    # Which tensors are one quantized tensor (Q output, the DQ reading it, its float
    # input), and their parameters: before the Q/DQ Identity nodes are removed.
    try:
        qclasses = _QClasses(pre)
    except _Unsupported as exc:
        problems.append(str(exc))
        qclasses = None
    # The passes also run when some nodes failed, so that one error lists them all.
    pre = _passes(pre, shapes, in_name, out_name)
    problems += [f"{p.name} ({p.attrs.get('_op', p.op)}): "
                 f"{p.attrs.get('_why', 'cannot be lowered')}"
                 for p in pre if p.op not in CANONICAL_OPS]
    if problems:
        raise _err_list(f"{path}: {len(problems)} unsupported node(s):", problems)
    pre = _dead_code(pre, out_name)

    nodes = [Node(p.name, p.op, list(p.inputs), list(p.outputs),
                  {k: v for k, v in p.attrs.items() if not k.startswith("_")},
                  {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in p.params.items()})
             for p in pre]
    quant = {}
    if qclasses is not None and qclasses.any:
        quant, problems = _attach_quant(pre, nodes, qclasses, in_name)
        if problems:
            raise _err_list(f"{path}: {len(problems)} node(s) with an unsupported "
                            "quantization:", problems)
        nodes = _explicit_clamps(nodes, quant, shapes)
    used = {in_name} | {t for nd in nodes for t in nd.inputs + nd.outputs}
    gshapes = {t: shapes[t] for t in used if t in shapes}
    name = g.name or os.path.splitext(os.path.basename(path))[0]
    return Graph(name=name, nodes=nodes, shapes=gshapes, input=in_name, output=out_name,
                 source_sha256=sha, quant={t: q for t, q in quant.items() if t in used})


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


def _lower(n, name, a, const_names, cval, shapes, opset, out_alias, qconst=None) -> list[_Pre]:
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
        attrs = {"strides": strides, "pads": pads, "group": group, "kernel": (kh, kw)}
        if qconst and ins[1] in qconst:
            attrs["_wq"] = _weight_codes(qconst[ins[1]], O, 0, transpose=False)
            if len(ins) > 2 and ins[2] in qconst:
                attrs["_bq"] = qconst[ins[2]]
        return [_Pre(name, "Conv", [x], [y], attrs, {"weight": w, "bias": b})]

    if op in ("QuantizeLinear", "DequantizeLinear"):
        qp = _act_qparams(op, ins, a, isconst, cval)
        # Float view: the identity; the parameters go to the tensor (see _QClasses).
        # (The codes tensor names the constraint: Q's output, DQ's input.)
        codes = y if op == "QuantizeLinear" else x
        return [_Pre(name, "Identity", [x], [y], {"_qdq": op, "_qc": [(codes, qp, name)]})]

    if op == "QLinearConv":
        return _lower_qlinear_conv(name, ins, y, a, isconst, cval, shapes)

    if op == "QLinearMatMul":
        return _lower_qlinear_matmul(name, ins, y, isconst, cval, shapes)

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
        gattrs = {}
        if qconst and ins[1] in qconst:
            if float(a.get("alpha", 1.0)) != 1.0:
                raise _Unsupported("quantized Gemm weights with alpha != 1")
            # B is [O, I] with transB (per-channel axis 0), else [I, O] (axis 1).
            gattrs["_wq"] = _weight_codes(qconst[ins[1]], O, 0 if int(a.get("transB", 0)) else 1,
                                          transpose=not int(a.get("transB", 0)))
        res.append(_Pre(name, "Gemm", [src], [y], gattrs, {"weight": W, "bias": bias}))
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
        mattrs = {}
        if qconst and ins[1] in qconst:
            mattrs["_wq"] = _weight_codes(qconst[ins[1]], B.shape[1], 1, transpose=True)
        return [_Pre(name, "Gemm", [x], [y], mattrs,
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
        shape = shapes[x]
        rank = len(shape)
        axis = int(a.get("axis", -1 if opset >= 13 else 1)) % rank
        if opset < 13 and axis != rank - 1:
            # Before opset 13 Softmax normalises over all of x's axes from `axis`
            # on, flattened into one. Where at most one of them is not 1 (the
            # classes of [1, C, 1, 1] after a global pool, as older exporters
            # write it), that is a softmax over that one axis. The batch axis
            # stays out: over it, samples would be mixed.
            big = [k for k in range(axis, rank) if shape[k] != 1]
            if axis == 0 or len(big) > 1:
                over = "the batch and " if axis == 0 else ""
                raise _Unsupported(
                    f"opset {opset} Softmax (axis={axis}) normalises over {over}the trailing "
                    f"axes {tuple(shape[axis:])} of its input {tuple(shape)} flattened "
                    "together; only a softmax over one axis (the classes) is supported: "
                    "re-export with opset >= 13 and a per-axis Softmax")
            axis = big[0] if big else rank - 1
        if y not in out_alias:
            raise _Unsupported("Softmax is only supported as the graph's output")
        return [_Pre(name, "Softmax", [x], [y], {"axis": axis})]

    raise _Unsupported("op not supported")


# --------------------------------------------------------------------------- quantization

_TYPE_BITS = {np.dtype(np.int8): 8, np.dtype(np.uint8): 8, np.dtype(np.int16): 16,
              np.dtype(np.uint16): 16, np.dtype(np.int32): 32, np.dtype(np.uint32): 32}


def _type_name(dt) -> str:
    dt = np.dtype(dt)
    bits = _TYPE_BITS.get(dt)
    return f"{dt.name} ({bits}-bit)" if bits else dt.name


@dataclass
class _QConst:
    """A constant DequantizeLinear: codes, scale, zero point (None = absent), axis."""
    node: str
    codes: np.ndarray
    scale: np.ndarray
    zero: np.ndarray | None
    axis: int


def _weight_codes(qc: _QConst, O: int, axis: int, transpose: bool):
    """Validated int8 weight codes -> (codes [O, ...] int8, scale [O] float32).

    Only symmetric int8 weights, per output channel (`axis`) or per tensor, are
    supported: the int8 kernels compute sum(code_x * code_w) without a weight zero point.
    """
    c, s = qc.codes, qc.scale
    where = f"weight {qc.node}"
    if c.dtype != np.int8:
        why = ("uint8 weights (only int8 symmetric weights are supported; quantize "
               "with weight_type=QInt8)" if c.dtype == np.uint8 else
               f"{_type_name(c.dtype)} weights (only int8 weights are supported)")
        raise _Unsupported(f"{where}: {why}")
    zero = np.zeros(1, np.int64) if qc.zero is None else qc.zero.astype(np.int64)
    if np.any(zero != 0):
        kind = "per-tensor" if zero.size == 1 else "per-channel"
        raise _Unsupported(f"{where}: {kind} asymmetric weights (zero point "
                           f"{zero.reshape(-1)[:4].tolist()}{'...' if zero.size > 4 else ''}, "
                           "only symmetric weights with zero point 0 are supported; quantize "
                           "with symmetric weights)")
    ax = qc.axis % c.ndim if c.ndim else 0
    if s.size == 1:
        scale = np.full(O, float(s.reshape(())))
    elif s.ndim == 1 and s.size == O and ax == axis:
        scale = s.astype(np.float64)
    else:
        raise _Unsupported(f"{where}: weight scale of shape {list(s.shape)} on axis "
                           f"{qc.axis} (per output channel, axis {axis}, or per tensor "
                           "is supported)")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise _Unsupported(f"{where}: weight scales must be positive and finite")
    codes = c.T.copy() if transpose else c.copy()
    return codes, scale.astype(np.float32)


def _act_qparams(op, ins, a, isconst, cval) -> QuantParams:
    """Per-tensor parameters of an activation QuantizeLinear/DequantizeLinear."""
    if len(ins) < 2 or not all(isconst(t) for t in ins[1:] if t):
        raise _Unsupported("scale and zero point must be constants")
    s = np.asarray(cval(ins[1]), np.float64)
    if len(ins) > 2 and ins[2]:
        z = np.asarray(cval(ins[2]))
    else:
        import onnx
        od = int(a.get("output_dtype", 0)) if op == "QuantizeLinear" else 0
        dt = onnx.helper.tensor_dtype_to_np_dtype(od) if od else np.uint8
        z = np.zeros((), dt)
    if s.size != 1 or z.size != 1:
        raise _Unsupported(f"per-channel activation quantization (scale shape "
                           f"{list(s.shape)}); only per-tensor activations are supported")
    if z.dtype == np.int8:
        zp = int(z.reshape(()))
    elif z.dtype == np.uint8:
        zp = int(z.reshape(())) - 128   # the same real values with int8 codes
    else:
        raise _Unsupported(f"{_type_name(z.dtype)} activations (only 8-bit int8/uint8 "
                           "activations are supported)")
    sc = float(np.float32(s.reshape(())))
    if not np.isfinite(sc) or sc <= 0:
        raise _Unsupported(f"activation scale {sc} is not positive and finite")
    return QuantParams(sc, zp)


def _lower_qlinear_conv(name, ins, y, a, isconst, cval, shapes):
    """QLinearConv(x, xs, xz, w, ws, wz, ys, yz[, B]) -> Conv of the dequantized
    weights, with the input/output parameters as constraints on x and y."""
    x = ins[0]
    if not all(isconst(t) for t in ins[1:] if t):
        raise _Unsupported("scales, zero points, weights and bias must be constants")
    xq = _act_qparams("DequantizeLinear", [x, ins[1], ins[2]], {}, isconst, cval)
    yq = _act_qparams("QuantizeLinear", [y, ins[6], ins[7]], {}, isconst, cval)
    w = np.asarray(cval(ins[3]))
    O = w.shape[0]
    codes, wscale = _weight_codes(_QConst(name, w, np.asarray(cval(ins[4]), np.float64),
                                          np.asarray(cval(ins[5])), 0), O, 0, False)
    wf = codes.astype(np.float64) * wscale.astype(np.float64).reshape(-1, 1, 1, 1)
    b = np.zeros(O)
    if len(ins) > 8 and ins[8]:
        bq = np.asarray(cval(ins[8]))
        if bq.dtype != np.int32:
            raise _Unsupported(f"bias of type {_type_name(bq.dtype)} (QLinearConv needs int32)")
        b = bq.astype(np.float64) * (np.float32(xq.scale) * wscale).astype(np.float64)
    kh, kw = w.shape[2:]
    C = shapes[x][1]
    group = int(a.get("group", 1))
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise _Unsupported("dilation != 1")
    if group != 1 and not (group == C and w.shape[1] == 1):
        raise _Unsupported(f"grouped convolution with group={group}")
    strides, pads = _window_attrs(a, shapes[x][2:], (kh, kw))
    return [_Pre(name, "Conv", [x], [y],
                 {"strides": strides, "pads": pads, "group": group, "kernel": (kh, kw),
                  "_wq": (codes, wscale), "_qc": [(x, xq, name), (y, yq, name)]},
                 {"weight": wf, "bias": b})]


def _lower_qlinear_matmul(name, ins, y, isconst, cval, shapes):
    """QLinearMatMul(a, as, az, b, bs, bz, ys, yz) with a constant b -> Gemm."""
    x = ins[0]
    if isconst(x) or not all(isconst(t) for t in ins[1:]):
        raise _Unsupported("only activation x constant-weight QLinearMatMul is supported")
    xq = _act_qparams("DequantizeLinear", [x, ins[1], ins[2]], {}, isconst, cval)
    yq = _act_qparams("QuantizeLinear", [y, ins[6], ins[7]], {}, isconst, cval)
    B = np.asarray(cval(ins[3]))
    if B.ndim != 2 or len(shapes[x]) != 2 or shapes[x][0] != 1:
        raise _Unsupported(f"only [1, I] x [I, O] is supported (got {shapes[x]} x {B.shape})")
    codes, wscale = _weight_codes(_QConst(name, B, np.asarray(cval(ins[4]), np.float64),
                                          np.asarray(cval(ins[5])), 1), B.shape[1], 1, True)
    wf = codes.astype(np.float64) * wscale.astype(np.float64).reshape(-1, 1)
    return [_Pre(name, "Gemm", [x], [y], {"_wq": (codes, wscale),
                                          "_qc": [(x, xq, name), (y, yq, name)]},
                 {"weight": wf, "bias": np.zeros(B.shape[1])})]


class _QClasses:
    """Union of the tensors a Q/DQ identity connects (one quantized tensor: the float
    value, its codes, their dequantized value) and each class's parameters."""

    def __init__(self, pre):
        self.parent: dict[str, str] = {}
        self.params: dict[str, tuple[QuantParams, str]] = {}
        for p in pre:
            if "_qdq" in p.attrs:
                self._union(p.inputs[0], p.outputs[0])
        for p in pre:
            for t, qp, who in p.attrs.get("_qc", ()):
                r = self.find(t)
                have = self.params.get(r)
                if have is None:
                    self.params[r] = (qp, who)
                elif (np.float32(have[0].scale) != np.float32(qp.scale)
                      or have[0].zero_point != qp.zero_point):
                    raise _Unsupported(
                        f"{who}: reads or writes tensor '{t}' with scale {qp.scale:.9g}, "
                        f"zero point {qp.zero_point}, but {have[1]} quantized it with "
                        f"scale {have[0].scale:.9g}, zero point {have[0].zero_point} "
                        "(re-quantization by reinterpreting codes is not supported)")
        self.any = bool(self.params)

    def find(self, t):
        while self.parent.get(t, t) != t:
            t = self.parent[t]
        return t

    def _union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def get(self, t) -> QuantParams | None:
        v = self.params.get(self.find(t))
        return None if v is None else v[0]


def _attach_quant(pre, nodes, qc: _QClasses, in_name):
    """Graph.quant and Node.quant for the lowered graph; problems as messages."""
    quant = {}
    for t in [in_name] + [t for n in nodes for t in n.inputs + n.outputs]:
        q = qc.get(t)
        if q is not None:
            quant[t] = q
    # Shape-only ops pass codes through: their output has their input's parameters.
    for n in nodes:
        if n.op in ("Flatten", "Reshape") and n.outputs[0] not in quant \
                and n.inputs[0] in quant:
            quant[n.outputs[0]] = quant[n.inputs[0]]
    problems = []
    for p, n in zip(pre, nodes):
        wq = p.attrs.get("_wq")
        if wq is None:
            continue
        codes, wscale = wq
        deq = codes.astype(np.float64) * wscale.astype(np.float64).reshape(
            (-1,) + (1,) * (codes.ndim - 1))
        if codes.shape != n.params["weight"].shape or not np.allclose(
                deq, n.params["weight"], rtol=1e-6, atol=0):
            problems.append(f"{n.name} ({n.op}): its weights were changed after "
                            "dequantization (a BatchNormalization or constant scale folded "
                            "into a quantized conv); quantize the model after folding")
            continue
        xq = quant.get(n.inputs[0])
        if xq is None:
            problems.append(f"{n.name} ({n.op}): int8 weights but a float input "
                            f"'{n.inputs[0]}' (no QuantizeLinear/DequantizeLinear before it)")
            continue
        # int32 bias at scale x_scale * w_scale[o]: the file's int32 codes when it has
        # them at that scale and nothing was folded into them, else the nearest code of
        # the float bias (1 code of slack at the int32 limits: a saturated code of the
        # file comes back from float32 one above it).
        bscale = (np.float32(xq.scale) * wscale).astype(np.float64)
        fb = p.attrs.get("_bq")
        if (fb is not None and fb.codes.dtype == np.int32 and fb.codes.shape == bscale.shape
                and np.allclose(fb.scale * np.ones_like(bscale), bscale, rtol=1e-5)
                and np.allclose(fb.codes * fb.scale, n.params["bias"], rtol=1e-6)):
            bq = fb.codes.astype(np.float64)
        else:
            bq = np.round(n.params["bias"].astype(np.float64) / bscale)
        if np.abs(bq).max(initial=0) > 2**31:
            problems.append(f"{n.name} ({n.op}): bias does not fit int32 at scale "
                            "input_scale * weight_scale")
            continue
        n.quant = WeightQuant(codes, wscale, np.clip(bq, -2**31, 2**31 - 1).astype(np.int32))
    return quant, problems


def _explicit_clamps(nodes, quant, shapes):
    """QuantizeLinear saturates: with zero point -128 its lowest code is real 0, so it is
    the model's ReLU (ReLU6 when 255 * scale = 6), and onnxruntime's quantizer removes
    the Relu/Clip it makes redundant. The float view must keep it: a Conv/Gemm/Add whose
    output is quantized so, and not already clamped, gets an explicit
    Clip(0, 255 * scale) writing its output tensor (its own output is renamed
    '<tensor>.unclamped'). The int8 kernels fuse it, as any Relu/Clip after them."""
    out = []
    for n in nodes:
        out.append(n)
        t = n.outputs[0]
        q = quant.get(t)
        if n.op not in ("Conv", "Gemm", "Add") or q is None or q.zero_point != -128:
            continue
        pre_t = f"{t}.unclamped"
        shapes[pre_t] = shapes[t]
        n.outputs = [pre_t]
        out.append(Node(f"{n.name}.clamp", "Clip", [pre_t], [t],
                        {"min": 0.0, "max": float(255 * q.scale)}))
    return out


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
