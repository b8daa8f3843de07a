"""`medyate infer MODEL.onnx --input X.npy --out Y.npy`: the forward pass on
the host build of the C engine (the same kernels the device runs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MedyateError
from .common import MODEL_HELP


def _normalised(x: np.ndarray, plan_path, where) -> np.ndarray:
    """uint8 pixels scaled to [0, 1] and normalised as the plan's data set was
    (data.record): what the model was planned and trained on."""
    from ..data.record import normalisation
    from ..planner.plan import load_plan
    norm = normalisation(load_plan(plan_path).data)
    if norm is None:
        raise MedyateError(f"input {where} holds uint8 pixels, but plan {plan_path} records "
                           "no normalisation of its data (made from float data, or by an older "
                           "medyate): give the input as normalised float32")
    mean, std = (np.asarray(v, np.float32) for v in norm)
    c = x.shape[-3] if x.ndim >= 3 else 0
    if mean.size not in (1, c):
        raise MedyateError(f"input {where} has {c} channels, the plan's normalisation "
                           f"{mean.size}")
    shape = (-1, 1, 1)
    return (x.astype(np.float32) / 255.0 - mean.reshape(shape)) / std.reshape(shape)


def run(args) -> int:
    from ..engine.host import HostEngine
    from ..ir.onnx_import import load_onnx
    from .profile import parse_shape

    from ..outputs import atomic_path, check_output_file
    # np.save's naming: OUT gets .npy unless it has it
    out = args.out if str(args.out).endswith(".npy") else f"{args.out}.npy"
    check_output_file(out, "--out")
    from ..data import resolve_model
    graph = load_onnx(str(resolve_model(args.model)),
                      parse_shape(args.input_shape) if args.input_shape else None)
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise MedyateError(f"cannot read input {args.input}: {exc}") from None
    if not isinstance(x, np.ndarray):
        x.close()
        raise MedyateError(f"input {args.input} is an .npz archive; give one .npy array")
    if x.dtype.kind not in "biuf":
        raise MedyateError(f"input {args.input} holds {x.dtype} values; expected numbers")
    if args.plan is not None and x.dtype == np.uint8 and x.size:
        x = _normalised(x, args.plan, args.input)
    if x.size == 0:
        raise MedyateError(f"input {args.input} is empty (shape {x.shape})")
    if not np.isfinite(x).all():
        raise MedyateError(f"input {args.input} holds NaN or infinite values")
    want = graph.shapes[graph.input]
    if x.ndim == len(want) - 1:
        x = x[None]
    if tuple(x.shape[1:]) != tuple(want[1:]):
        raise MedyateError(f"input {args.input} has shape {tuple(x.shape)}; the model expects "
                           f"(N, {', '.join(map(str, want[1:]))}) in NCHW")
    eng = HostEngine(graph)
    y = eng.forward(x.astype(np.float32))
    if eng.program.output_softmax:
        z = np.exp(y - y.max(axis=1, keepdims=True))
        y = z / z.sum(axis=1, keepdims=True)
    with atomic_path(out, "output") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, y.reshape((len(y),) + tuple(graph.shapes[graph.output][1:])))
    print(f"wrote {out}: {len(y)} sample(s), output shape {tuple(graph.shapes[graph.output][1:])}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "infer", help="run the model's forward pass on the host engine",
        description="Run the forward pass of MODEL on the host build of the C engine and "
                    "save the model's first output. The input is NCHW as the ONNX model "
                    "expects (a single sample without the batch axis is accepted).")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--input", required=True,
                   help=".npy file with the input batch (NCHW) (required)")
    p.add_argument("--out", required=True, help=".npy file to write the output to (required)")
    p.add_argument("--input-shape", help="static input shape if the model's is dynamic, e.g. "
                                         "1,3,32,32 (default: the model's)")
    p.add_argument("--plan", help="plan.json whose data set's normalisation is applied to "
                                  "uint8 (0-255) pixels; float input is taken as normalised "
                                  "(default: none, the input is used as given)")
    p.set_defaults(func=run)
