"""`medyate convert`: a model to QDQ int8 ONNX, either a Tiny Training Engine int8
model (.pkl, converted as it is) or a float ONNX model (quantized by onnxruntime's
quantize_static, calibrated on the training split of --data)."""
from __future__ import annotations

from pathlib import Path

from .common import option


def run(args) -> int:
    from ..errors import MedyateError
    from ..ir.tte_import import convert_tte

    src = Path(args.source)
    if not src.is_file():
        raise MedyateError(f"{src} not found")
    is_onnx = src.suffix.lower() == ".onnx"
    default = src.with_name(src.stem + "-int8.onnx") if is_onnx else src.with_suffix(".onnx")
    out = Path(args.output) if args.output else default
    if out.resolve() == src.resolve():
        raise MedyateError(f"output {out} would overwrite the source file")
    if out.exists() and not args.force:
        raise MedyateError(f"{out} exists; pass --force to overwrite it")
    if is_onnx:
        return _quantize(args, src, out)
    if args.data:
        raise MedyateError("--data is for float ONNX models; a TTE model is already int8")
    s = convert_tte(src, out)
    print(f"{src} -> {out}: QDQ ONNX, input 1x{s['input'][1]}x{s['input'][2]}x"
          f"{s['input'][3]} (RGB, trunc(pixel - 127.5) / 127.5), {s['convs']} convs "
          f"(int8 per-channel weights, int32 bias), {s['residual_adds']} residual adds, "
          f"{s['classes']} logits, {s['bytes']:,} bytes")
    return 0


def _quantize(args, src, out) -> int:
    from ..data import load_task
    from ..errors import MedyateError
    from ..ir.onnx_import import load_onnx
    from ..ir.quantize import quantize_model, require_int8

    if not args.data:
        raise MedyateError(f"{src} is a float ONNX model: give --data (a builtin task or "
                           "your training data) to calibrate its int8 quantization")
    task = load_task(args.data, seed=args.data_seed)
    x = task.x_train[:args.calibration_samples]
    quantize_model(src, out, x, max_samples=args.calibration_samples)
    g = load_onnx(out)
    require_int8(g)
    n = sum(1 for nd in g.nodes if nd.quant is not None)
    print(f"{src} -> {out}: QDQ ONNX by onnxruntime quantize_static (int8 activations "
          f"per tensor, int8 symmetric weights per channel), calibrated on {len(x)} "
          f"training samples of {task.name}; {n} int8 layers, {len(g.quant)} quantized "
          f"tensors, {out.stat().st_size:,} bytes")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="a TTE int8 model (.pkl) or a float ONNX model -> QDQ int8 ONNX",
        description="Write a model as standard ONNX in QDQ form (QuantizeLinear/"
                    "DequantizeLinear around each op, int8 per-channel weights, int32 "
                    "biases, per-tensor int8 activations). A .pkl is an int8 model in the "
                    "Tiny Training Engine's format (mit-han-lab/tiny-training, e.g. "
                    "models/tte/mcunet-5fps.pkl), converted exactly; it is read with a "
                    "restricted unpickler (numpy arrays only), nothing in it is executed. "
                    "A .onnx float model is quantized by onnxruntime's quantize_static, "
                    "calibrated on the training split of --data.")
    p.add_argument("source", help="the TTE .pkl file, or a float .onnx model")
    p.add_argument("-o", "--output", help="the ONNX file to write (default: source with .onnx)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file (default: refuse)")
    p.add_argument("--data", help="float models: calibration data, a builtin task name, an "
                                  ".npz or an image folder (its training split is used); required "
                                  "for a float model (default: none, for a TTE .pkl)")
    p.add_argument("--data-seed", type=option("data_seed"), default=0, help="seed of the task's split (default 0)")
    p.add_argument("--calibration-samples", type=option("calibration_samples"), default=256,
                   help="training samples used for calibration (default 256, at least 16)")
    p.set_defaults(func=run)
