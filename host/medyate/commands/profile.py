"""`medyate profile MODEL.onnx`: per-layer sizes, MACs and training costs."""
from __future__ import annotations

import argparse
import json

from ..errors import MedyateError


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,32,32' (or '1x3x32x32') -> (1, 3, 32, 32)."""
    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise MedyateError(f"--input-shape {text!r}: expected integers such as 1,3,32,32") from None
    if not shape or any(d <= 0 for d in shape):
        raise MedyateError(f"--input-shape {text!r}: every dimension must be a positive integer")
    return shape


def run(args) -> int:
    from ..profile import format_report, profile_model

    shape = parse_shape(args.input_shape) if args.input_shape else None
    rep = profile_model(args.model, shape)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(format_report(rep))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "profile",
        help="per-layer parameters, MACs, activation memory and training costs of an ONNX model",
        description=(
            "Import an ONNX model into the training IR (BatchNormalization and constants "
            "folded) and report, per layer: op, input and output shapes, parameters, MACs, "
            "output activation bytes and, for trainable layers (Conv, Gemm), the cost of "
            "training one input channel (weight-gradient slice + saved input map, in "
            "elements and bytes). Totals: parameter bytes, MACs, peak forward activation "
            "memory and the memory full fine-tuning would need. All sizes are float32, "
            "batch 1."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: medyate profile model.onnx --input-shape 1,3,32,32 --json")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX model file")
    p.add_argument("--input-shape", metavar="N,C,H,W",
                   help="static input shape (batch 1), needed when the model's input has "
                        "dynamic dimensions other than the batch, e.g. 1,3,32,32 (default: the "
                        "model's)")
    p.add_argument("--json", action="store_true",
                   help="print the same data as machine-readable JSON (default: a table)")
    p.set_defaults(func=run)
