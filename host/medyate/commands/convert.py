"""`medyate convert`: a Tiny Training Engine int8 model (.pkl) -> QDQ ONNX."""
from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from ..errors import MedyateError
    from ..ir.tte_import import convert_tte

    src = Path(args.source)
    out = Path(args.output) if args.output else src.with_suffix(".onnx")
    if out.resolve() == src.resolve():
        raise MedyateError(f"output {out} would overwrite the source file")
    if out.exists() and not args.force:
        raise MedyateError(f"{out} exists; pass --force to overwrite it")
    s = convert_tte(src, out)
    print(f"{src} -> {out}: QDQ ONNX, input 1x{s['input'][1]}x{s['input'][2]}x"
          f"{s['input'][3]} (RGB, trunc(pixel - 127.5) / 127.5), {s['convs']} convs "
          f"(int8 per-channel weights, int32 bias), {s['residual_adds']} residual adds, "
          f"{s['classes']} logits, {s['bytes']:,} bytes")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="convert a Tiny Training Engine int8 model (.pkl) to QDQ ONNX",
        description="Convert an int8 model in the Tiny Training Engine's pickle format "
                    "(mit-han-lab/tiny-training, e.g. models/tte/mcunet-5fps.pkl) to "
                    "standard ONNX in QDQ form: QuantizeLinear/DequantizeLinear around "
                    "each Conv, int8 per-channel weights, int32 biases, per-tensor "
                    "activation scales. The pickle is read with a restricted unpickler "
                    "(numpy arrays only); nothing in it is executed.")
    p.add_argument("source", help="the TTE .pkl file")
    p.add_argument("-o", "--output", help="the ONNX file to write (default: source with .onnx)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=run)
