"""Tiny Training Engine int8 models (`.pkl`) -> standard ONNX in QDQ form.

The Tiny Training Engine (mit-han-lab/tiny-training) ships its int8 ImageNet models as a
`torch.save` zip archive whose `data.pkl` is a plain pickle of dicts, lists, numbers and
numpy arrays (format: models/README.md). This module reads it with the standard library
and numpy alone and writes an ONNX model that onnxruntime, and `onnx_import`, read like
the output of any post-training quantizer:

    input (float, an image in [-1, 1])
      -> QuantizeLinear(1/127.5, 0) -> int8 code
      -> DequantizeLinear(x_scale, x_zero) -> Conv(DequantizeLinear(int8 weight,
             per-output-channel w_scales, axis 0), DequantizeLinear(int32 bias,
             x_scale * w_scales, axis 0))
      -> [Clip(0, 255 * y_scale) where y_zero = -128: the ReLU/ReLU6 that TTE expresses
          only through the int8 clamp]
      -> QuantizeLinear(y_scale, y_zero) -> int8 code -> ...

Why this form:
- Every int8 tensor of TTE is one QuantizeLinear output; every consumer reads it through
  its own DequantizeLinear with the parameters *that consumer* was calibrated with, which
  is exactly TTE's semantics (a layer subtracts its own `x_zero` from the code it gets).
  In the three published models producer and consumer parameters agree everywhere.
- Weights stay int8 initializers and biases int32 initializers (file size close to the
  original), with their scales beside them: nothing is re-quantized here.
- TTE's activation is the int8 clamp itself: a layer with `y_zero = -128` clamps at 0,
  i.e. ReLU (ReLU6 when `y_scale = 6/255`). The converter writes that Clip explicitly so
  that the float view of the model (the QDQ pairs ignored) keeps its nonlinearity; in
  the quantized model it is redundant with the QuantizeLinear that follows.
- Residual add: float Add of the two dequantized operands, then QuantizeLinear with the
  block's `y_scale`/`y_zero`: round(((a - za) sa + (b - zb) sb) / sy) + zy, clamped.
- Global average pool: DequantizeLinear, GlobalAveragePool, QuantizeLinear with the same
  scale and zero point (TTE rounds the mean of the codes; the two can differ by one code
  at exact ties, see tests/ir/test_tte.py for the measured share).
- Classifier: a 1x1 Conv on the pooled [1, C, 1, 1] map, quantized to int8 (TTE's output
  is int8), dequantized, flattened to the logits [1, classes].

The unpickler is restricted to exactly the four globals such files need (numpy's array
reconstruction, `ndarray`, `dtype`, and `_codecs.encode` for array bytes): a pickle
naming anything else is refused, never executed.
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np

from ..errors import MedyateError

OPSET = 13          # per-channel (axis) QuantizeLinear/DequantizeLinear need opset 13
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# Float meaning of the model input: TTE feeds the code trunc(pixel - 127.5) with scale
# 1/127.5 and zero point 0, i.e. an RGB image in [-1, 1] (see `image_to_input`).
INPUT_SCALE = 1.0 / 127.5


def _allowed_globals():
    try:
        from numpy._core import multiarray as ma          # numpy >= 2
    except ImportError:                                   # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma
    import _codecs
    return {
        ("numpy.core.multiarray", "_reconstruct"): ma._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): ma._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a TTE model file needs; anything else is an error."""

    def __init__(self, f, path):
        super().__init__(f)
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        obj = self._allowed.get((module, name))
        if obj is None:
            raise MedyateError(
                f"{self._path}: the pickle names '{module}.{name}', which a TTE model file "
                "does not need (allowed: numpy arrays and dtypes only); refusing to load it")
        return obj

    def persistent_load(self, pid):
        raise MedyateError(
            f"{self._path}: the pickle references external storage ({pid!r}), i.e. torch "
            "tensors; only TTE's numpy-array model format is supported")


def load_tte(path) -> dict:
    """Read a TTE `.pkl` (a torch.save zip with a plain data.pkl, or a bare pickle)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise MedyateError(f"cannot read {path}: {exc.strerror or exc}") from None
    if zipfile.is_zipfile(io.BytesIO(data)):
        z = zipfile.ZipFile(io.BytesIO(data))
        entries = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(entries) != 1:
            raise MedyateError(f"{path}: a zip archive without exactly one data.pkl "
                               f"(entries: {', '.join(z.namelist()[:8])})")
        data = z.read(entries[0])
    try:
        cfg = _RestrictedUnpickler(io.BytesIO(data), path).load()
    except MedyateError:
        raise
    except Exception as exc:
        raise MedyateError(f"{path}: not a readable TTE model pickle ({exc})") from None
    _validate(cfg, path)
    return cfg


# --------------------------------------------------------------------------- validation

_CONV_KEYS = ("in_channel", "out_channel", "kernel_size", "stride", "groups", "params")
_PARAM_KEYS = ("weight", "bias", "w_scales", "x_scale", "x_zero", "y_scale", "y_zero")


def _need(d, keys, where, path):
    if not isinstance(d, dict):
        raise MedyateError(f"{path}: {where} is {type(d).__name__}, expected a dict")
    missing = [k for k in keys if k not in d]
    if missing:
        raise MedyateError(f"{path}: {where} lacks field(s) {', '.join(missing)}")


def _validate_conv(c, where, path):
    _need(c, _CONV_KEYS, where, path)
    p = c["params"]
    _need(p, _PARAM_KEYS, where + ".params", path)
    w, b, s = (np.asarray(p[k]) for k in ("weight", "bias", "w_scales"))
    O, I, g = int(c["out_channel"]), int(c["in_channel"]), int(c["groups"])
    k = c["kernel_size"]
    k = (k, k) if isinstance(k, int) else tuple(k)
    if w.dtype != np.int8:
        raise MedyateError(f"{path}: {where}.params.weight is {w.dtype}, expected int8")
    if w.shape != (O, I // g) + k:
        raise MedyateError(f"{path}: {where}.params.weight has shape {w.shape}, expected "
                           f"{(O, I // g) + k} from in/out_channel, groups, kernel_size")
    if b.dtype != np.int32 or b.shape != (O,):
        raise MedyateError(f"{path}: {where}.params.bias is {b.dtype}{list(b.shape)}, "
                           f"expected int32[{O}]")
    if s.shape != (O,) or not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise MedyateError(f"{path}: {where}.params.w_scales must be {O} positive finite "
                           f"scales (got shape {s.shape})")
    for key in ("x_scale", "y_scale"):
        v = float(np.asarray(p[key]).reshape(()))
        if not np.isfinite(v) or v <= 0:
            raise MedyateError(f"{path}: {where}.params.{key} = {v} is not a positive scale")
    for key in ("x_zero", "y_zero"):
        v = int(np.asarray(p[key]).reshape(()))
        if not -128 <= v <= 127:
            raise MedyateError(f"{path}: {where}.params.{key} = {v} is not an int8 zero point")
    if k[0] % 2 == 0 or k[1] % 2 == 0:
        raise MedyateError(f"{path}: {where}: even kernel {k} (padding (k-1)/2 needs odd k)")
    if c.get("act") is not None:
        raise MedyateError(f"{path}: {where}.act = {c['act']!r}: only the int8 clamp "
                           "(act None) is supported")


def _validate(cfg, path):
    _need(cfg, ("first_conv", "blocks", "classifier"), "the model", path)
    _validate_conv(cfg["first_conv"], "first_conv", path)
    if not isinstance(cfg["blocks"], list):
        raise MedyateError(f"{path}: blocks is not a list")
    for i, b in enumerate(cfg["blocks"]):
        where = f"blocks[{i}]"
        _need(b, ("depthwise", "pointwise2"), where, path)
        for k in ("pointwise1", "depthwise", "pointwise2"):
            if b.get(k) is not None:
                _validate_conv(b[k], f"{where}.{k}", path)
        if b.get("se") is not None:
            raise MedyateError(f"{path}: {where}.se: squeeze-excite blocks are not supported")
        r = b.get("residual")
        if r is not None:
            if "kernel_size" in r:
                raise MedyateError(f"{path}: {where}.residual: a conv on the skip path is "
                                   "not supported")
            _need(r.get("params"), ("x_scale", "x_zero", "y_scale", "y_zero"),
                  f"{where}.residual.params", path)
    if cfg.get("feature_mix") is not None:
        _validate_conv(cfg["feature_mix"], "feature_mix", path)
    _validate_conv(cfg["classifier"], "classifier", path)


# --------------------------------------------------------------------------- ONNX

class _Builder:
    def __init__(self):
        self.nodes, self.inits = [], []
        self._n = 0

    def const(self, name, arr):
        from onnx import numpy_helper
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op, ins, outs, name, **attrs):
        from onnx import helper
        self.nodes.append(helper.make_node(op, ins, outs, name=name, **attrs))
        return outs[0]

    def quantize(self, x, scale, zero, name):
        """float tensor -> int8 code tensor `name`.q (per-tensor)."""
        s = self.const(f"{name}.q.scale", np.float32(scale))
        z = self.const(f"{name}.q.zero_point", np.int8(zero))
        return self.node("QuantizeLinear", [x, s, z], [f"{name}.q"], f"{name}.quantize")

    def dequantize(self, q, scale, zero, name):
        """int8 code tensor -> float tensor, per-tensor parameters of the consumer."""
        s = self.const(f"{name}.dq.scale", np.float32(scale))
        z = self.const(f"{name}.dq.zero_point", np.int8(zero))
        return self.node("DequantizeLinear", [q, s, z], [f"{name}.dq"], f"{name}.dequantize")

    def conv(self, c, q_in, name):
        """A TTE conv reading int8 code `q_in`; returns its int8 output code tensor."""
        p = c["params"]
        xs, xz = float(p["x_scale"]), int(p["x_zero"])
        ys, yz = float(p["y_scale"]), int(p["y_zero"])
        ws = np.asarray(p["w_scales"], np.float32)
        O = ws.shape[0]
        x = self.dequantize(q_in, xs, xz, f"{name}.input")
        w = self.node("DequantizeLinear",
                      [self.const(f"{name}.weight", np.asarray(p["weight"], np.int8)),
                       self.const(f"{name}.weight.scale", ws),
                       self.const(f"{name}.weight.zero_point", np.zeros(O, np.int8))],
                      [f"{name}.weight.dq"], f"{name}.weight.dequantize", axis=0)
        # int32 bias at scale x_scale * w_scale (TTE adds it to the int32 accumulator).
        bs = (np.float64(xs) * ws.astype(np.float64)).astype(np.float32)
        b = self.node("DequantizeLinear",
                      [self.const(f"{name}.bias", np.asarray(p["bias"], np.int32)),
                       self.const(f"{name}.bias.scale", bs),
                       self.const(f"{name}.bias.zero_point", np.zeros(O, np.int32))],
                      [f"{name}.bias.dq"], f"{name}.bias.dequantize", axis=0)
        k = c["kernel_size"]
        kh, kw = (k, k) if isinstance(k, int) else tuple(k)
        ph, pw = (kh - 1) // 2, (kw - 1) // 2
        y = self.node("Conv", [x, w, b], [f"{name}.out"], name,
                      kernel_shape=[kh, kw], strides=[int(c["stride"])] * 2,
                      pads=[ph, pw, ph, pw], group=int(c["groups"]))
        if yz == -128:
            # The int8 clamp at code -128 is a ReLU (ReLU6 for y_scale 6/255): explicit
            # for the float view, redundant with the QuantizeLinear after it.
            lo = self.const(f"{name}.clip.min", np.float32(0.0))
            hi = self.const(f"{name}.clip.max", np.float32(255 * ys))
            y = self.node("Clip", [y, lo, hi], [f"{name}.act"], f"{name}.clip")
        return self.quantize(y, ys, yz, name)


def tte_to_onnx(cfg: dict, name: str = "tte"):
    """The TTE model dict (see `load_tte`) -> onnx.ModelProto in QDQ form."""
    import onnx
    from onnx import TensorProto, helper

    bld = _Builder()
    fc = cfg["first_conv"]
    res = int(fc.get("in_shape", 128))
    cin = int(fc["in_channel"])
    q = bld.quantize(INPUT_NAME, INPUT_SCALE, 0, "input")
    q = bld.conv(fc, q, "first_conv")
    for i, b in enumerate(cfg["blocks"]):
        block_in = q
        for part in ("pointwise1", "depthwise", "pointwise2"):
            if b.get(part) is not None:
                q = bld.conv(b[part], q, f"blocks.{i}.{part}")
        r = b.get("residual")
        if r is not None:
            rp, pp = r["params"], b["pointwise2"]["params"]
            skip = bld.dequantize(block_in, rp["x_scale"], rp["x_zero"], f"blocks.{i}.skip")
            main = bld.dequantize(q, pp["y_scale"], pp["y_zero"], f"blocks.{i}.main")
            s = bld.node("Add", [skip, main], [f"blocks.{i}.add"], f"blocks.{i}.add")
            q = bld.quantize(s, rp["y_scale"], rp["y_zero"], f"blocks.{i}.add")
    if cfg.get("feature_mix") is not None:
        q = bld.conv(cfg["feature_mix"], q, "feature_mix")
    cls = cfg["classifier"]
    ps, pz = cls["params"]["x_scale"], cls["params"]["x_zero"]
    x = bld.dequantize(q, ps, pz, "pool.input")
    x = bld.node("GlobalAveragePool", [x], ["pool.out"], "pool")
    q = bld.quantize(x, ps, pz, "pool")
    q = bld.conv(cls, q, "classifier")
    p = cls["params"]
    y = bld.dequantize(q, p["y_scale"], p["y_zero"], "classifier.output")
    bld.node("Flatten", [y], [OUTPUT_NAME], "flatten", axis=1)
    n_out = int(cls["out_channel"])
    graph = helper.make_graph(
        bld.nodes, name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", cin, res, res])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", n_out])],
        bld.inits)
    model = helper.make_model(graph, producer_name="medyate convert",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    model.doc_string = ("Converted from a Tiny Training Engine int8 model (MIT HAN Lab, "
                        "mit-han-lab/tiny-training, MIT License). Input: RGB image, CHW, "
                        "trunc(pixel - 127.5) / 127.5.")
    onnx.checker.check_model(model)
    return model


def convert_tte(src, dst, name: str | None = None) -> dict:
    """Convert the TTE `.pkl` at `src` to a QDQ ONNX file at `dst`; returns a summary."""
    import onnx

    cfg = load_tte(src)
    if name is None:
        name = os.path.splitext(os.path.basename(os.fspath(src)))[0]
    model = tte_to_onnx(cfg, name)
    onnx.save(model, os.fspath(dst))
    convs = sum(1 for n in model.graph.node if n.op_type == "Conv")
    return {"name": name, "convs": convs,
            "blocks": len(cfg["blocks"]),
            "residual_adds": sum(1 for b in cfg["blocks"] if b.get("residual") is not None),
            "input": (1, int(cfg["first_conv"]["in_channel"]),
                      int(cfg["first_conv"].get("in_shape", 128)),
                      int(cfg["first_conv"].get("in_shape", 128))),
            "classes": int(cfg["classifier"]["out_channel"]),
            "bytes": os.path.getsize(os.fspath(dst))}


def image_to_input(rgb_u8: np.ndarray) -> np.ndarray:
    """An RGB uint8 image [H, W, 3] (already at the model's resolution) -> the model's
    float input [1, 3, H, W]: TTE's code trunc(pixel - 127.5), times 1/127.5."""
    x = np.asarray(rgb_u8)
    if x.ndim != 3 or x.shape[2] != 3:
        raise MedyateError(f"expected an RGB image [H, W, 3], got shape {x.shape}")
    code = np.trunc(x.astype(np.float64) - 127.5)
    return (code / 127.5).transpose(2, 0, 1)[None].astype(np.float32)
