"""The bundled pre-trained models (models/*.onnx at the repository root) and a quick
ONNX-level summary of a model's size: parameters, MACs and activation sizes.

The summary reads the ONNX file directly (batch 1, BatchNormalization counted as folded
into the conv before it), so it works before any import into the IR; the planner's
figures are the exact ones for training memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medyate.errors import MedyateError

MODELS_DIR = Path(__file__).resolve().parents[3] / "models"
# the self-made 28x28 fp32 models (models/pretrain.py) and the ImageNet-pretrained
# int8 ones at 3x128x128 (converted from models/tte/ by `medyate convert`)
TINY_MODELS = ("mbv2-tiny", "mcunet-tiny")
REAL_MODELS = ("mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3")
BUNDLED_MODELS = TINY_MODELS + REAL_MODELS


def bundled_model(name: str) -> Path:
    """Path of a bundled model (one of BUNDLED_MODELS)."""
    if name not in BUNDLED_MODELS:
        raise MedyateError(f"unknown bundled model {name!r}; bundled models are "
                           f"{', '.join(BUNDLED_MODELS)}")
    p = MODELS_DIR / f"{name}.onnx"
    if not p.is_file():
        how = (".venv/bin/python models/pretrain.py" if name in TINY_MODELS else
               f".venv/bin/medyate convert models/tte/{name}.pkl -o models/{name}.onnx")
        raise MedyateError(f"bundled model {name} not found at {p}; regenerate it with {how}")
    return p


def resolve_model(name_or_path) -> Path:
    """A model file, or the name of a bundled model (BUNDLED_MODELS)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if str(name_or_path) in BUNDLED_MODELS:
        return bundled_model(str(name_or_path))
    raise MedyateError(f"model {name_or_path} not found (a file, or one of the bundled "
                       f"models: {', '.join(BUNDLED_MODELS)})")


def _dims(vi) -> tuple[int, ...]:
    # a symbolic (batch) dimension counts as 1
    return tuple(d.dim_value if d.HasField("dim_value") else 1
                 for d in vi.type.tensor_type.shape.dim)


def model_summary(path) -> dict:
    """{'params', 'macs', 'conv_layers', 'input_shape', 'output_shape',
    'largest_activation' (elements), 'largest_activation_tensor', 'max_op_io' (elements
    of one op's inputs + output, the two-tensor live set), 'peak_live' (elements live at
    once over the whole schedule, residual inputs included), 'ops'} at batch 1."""
    import onnx
    from onnx import numpy_helper, shape_inference

    try:
        m = onnx.load(str(path))
    except Exception as e:
        raise MedyateError(f"cannot read ONNX model {path}: {e}") from e
    g = shape_inference.infer_shapes(m).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    shapes = {vi.name: _dims(vi) for vi in list(g.input) + list(g.value_info) + list(g.output)}
    consts = set(inits)
    for n in g.node:
        if n.op_type == "Constant":
            consts.update(n.output)
        elif n.op_type == "DequantizeLinear" and n.input[0] in inits:
            # a QDQ model stores weights as int8 initializers behind DequantizeLinear:
            # the dequantized tensor is a parameter of the same shape, not an activation
            inits[n.output[0]] = inits[n.input[0]]
            consts.add(n.output[0])

    params = macs = conv_layers = 0
    ops: dict[str, int] = {}
    for n in g.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
        if n.op_type == "Conv":
            w = inits[n.input[1]]
            o, i_g, kh, kw = w.shape
            out = shapes[n.output[0]]
            params += w.size + o                       # bias exists once BN is folded
            macs += int(np.prod(out[1:])) * i_g * kh * kw
            conv_layers += 1
        elif n.op_type == "Gemm":
            w = inits[n.input[1]]
            params += w.size + (inits[n.input[2]].size if len(n.input) > 2 else 0)
            macs += w.size

    def size(t):
        return int(np.prod(shapes[t])) if t in shapes else 0

    acts = [t for t in shapes if t not in consts]
    largest = max(acts, key=size)
    order = [n for n in g.node if n.op_type != "Constant"]
    max_io = max(sum(size(t) for t in set(n.input) | set(n.output) if t not in consts)
                 for n in order)
    # liveness: a tensor lives from its producer (or the start) to its last consumer
    last = {}
    for i, n in enumerate(order):
        for t in n.input:
            if t not in consts:
                last[t] = i
    for o in g.output:
        last[o.name] = len(order)
    born = {g.input[0].name: -1}
    for i, n in enumerate(order):
        for t in n.output:
            born[t] = i
    peak = max(sum(size(t) for t in born if born[t] <= i <= last.get(t, born[t]))
               for i in range(len(order)))
    return {
        "params": int(params), "macs": int(macs), "conv_layers": conv_layers,
        "input_shape": shapes[g.input[0].name], "output_shape": shapes[g.output[0].name],
        "largest_activation": size(largest), "largest_activation_tensor": largest,
        "max_op_io": int(max_io), "peak_live": int(peak), "ops": ops,
    }
