"""Dataset images: the train and test split laid out for device memory.

The image is loaded next to the firmware (QEMU: `-device loader`, a board: flash)
and read in place by firmware/src/device/mdy_dataset.c, so samples are NHWC
exactly as the engine consumes them and every part is 16-byte aligned: float32
for an fp32 model, the input's int8 codes for an int8 model (a quarter of the
bytes; the header records the scale and zero point they were quantized with,
and a device refuses codes of another quantization than its model input's).

    header (64 bytes, spec.DATASET_HEADER): "MDYD", version, header size,
        n_train, n_test, h, w, c, classes, byte offsets of x_train, y_train,
        x_test, y_test, total size, data CRC, element type, zero point, scale,
        CRC-32 of the header bytes before the CRC
    x_train  float32 or int8 [n_train][h][w][c]
    y_train  uint8   [n_train]
    x_test   float32 or int8 [n_test][h][w][c]
    y_test   uint8   [n_test]

This module quantizes nothing: int8 samples come already as codes, from the
runtime's own mdy_input_from_f32 (engine.host.input_codes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import spec
from .framing import crc32


def _align(n: int) -> int:
    a = spec.DATASET_ALIGN
    return (n + a - 1) // a * a


def _layout(part_sizes) -> tuple[list[int], int]:
    """Offsets of the parts (after the header, each 16-byte aligned) and the
    image's total size."""
    off, offs = spec.DATASET_HEADER_SIZE, []
    for n in part_sizes:
        off = _align(off)
        offs.append(off)
        off += int(n)
    return offs, _align(off)


def dataset_image_size(n_train: int, n_test: int, sample_bytes: int) -> int:
    """Bytes of the image of n_train + n_test samples of `sample_bytes` each
    (4 per element as floats, 1 as int8 codes), without making it."""
    return _layout([n_train * sample_bytes, n_train, n_test * sample_bytes, n_test])[1]


def dataset_image_bytes(x_train, y_train, x_test, y_test, classes: int | None = None,
                        input_quant: tuple[float, int] | None = None) -> bytes:
    """The image of NCHW sample arrays and integer labels (x converted to
    NHWC): float samples, or with `input_quant` = (scale, zero) int8 codes
    quantized with them (an int8 model's input)."""
    s8 = input_quant is not None
    want = np.int8 if s8 else np.float32
    xs, ys = [], []
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if s8 and np.asarray(x).dtype != np.int8:
            raise ValueError(f"input_quant given: x must be int8 codes, got {np.asarray(x).dtype}")
        x = np.asarray(x, dtype=want)
        y = np.asarray(y).reshape(-1)
        if x.ndim != 4:
            raise ValueError(f"x must be NCHW (4-D), got shape {x.shape}")
        if len(x) != len(y):
            raise ValueError(f"{len(x)} samples but {len(y)} labels")
        xs.append(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        ys.append(y)
    if xs[0].shape[1:] != xs[1].shape[1:] and len(xs[1]) and len(xs[0]):
        raise ValueError(f"train and test samples differ in shape: {xs[0].shape[1:]} vs {xs[1].shape[1:]}")
    h, w, c = (xs[0] if len(xs[0]) else xs[1]).shape[1:]
    top = max([int(y.max()) + 1 for y in ys if len(y)] + [1])
    classes = top if classes is None else classes
    if not 0 < classes <= 256 or top > classes:
        raise ValueError(f"labels must be in [0, {classes}) and classes <= 256")
    if any(len(y) and int(y.min()) < 0 for y in ys):
        raise ValueError("negative label")
    parts = [xs[0].tobytes(), ys[0].astype(np.uint8).tobytes(),
             xs[1].tobytes(), ys[1].astype(np.uint8).tobytes()]
    offs, total = _layout(map(len, parts))
    out = bytearray(total)
    for o, p in zip(offs, parts):
        out[o:o + len(p)] = p
    hdr = spec.DATASET_HEADER.pack(
        magic=spec.DATASET_MAGIC, version=spec.DATASET_VERSION,
        header_size=spec.DATASET_HEADER_SIZE, n_train=len(xs[0]), n_test=len(xs[1]),
        h=h, w=w, c=c, classes=classes,
        x_train=offs[0], y_train=offs[1], x_test=offs[2], y_test=offs[3],
        total_size=total, data_crc=crc32(bytes(out[spec.DATASET_HEADER_SIZE:])),
        dtype=spec.DATASET_S8 if s8 else spec.DATASET_F32, pad=0,
        zero=int(input_quant[1]) if s8 else 0, scale=float(input_quant[0]) if s8 else 0.0,
        reserved=0, header_crc=0)
    hdr = hdr[:-4] + crc32(hdr[:-4]).to_bytes(4, "little")
    out[:len(hdr)] = hdr
    return bytes(out)


def write_dataset_image(path, x_train, y_train, x_test, y_test, classes: int | None = None,
                        input_quant: tuple[float, int] | None = None) -> Path:
    """Write the image of NCHW arrays to `path` (see dataset_image_bytes);
    returns the path."""
    path = Path(path)
    path.write_bytes(dataset_image_bytes(x_train, y_train, x_test, y_test, classes, input_quant))
    return path


def read_dataset_image(path_or_bytes) -> dict:
    """Parse and check an image: header fields plus x_train/x_test (NHWC,
    float32 or int8 codes as its dtype says) and y_train/y_test (uint8)."""
    data = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else Path(path_or_bytes).read_bytes()
    if len(data) < spec.DATASET_HEADER_SIZE:
        raise ValueError("dataset image shorter than its header")
    hd = spec.DATASET_HEADER.unpack(data[:spec.DATASET_HEADER_SIZE])
    if data[:4] != spec.DATASET_MAGIC or hd["version"] != spec.DATASET_VERSION:
        raise ValueError("not a medyate dataset image (magic/version)")
    if crc32(data[:spec.DATASET_HEADER_SIZE - 4]) != hd["header_crc"]:
        raise ValueError("dataset image header CRC mismatch")
    if len(data) < hd["total_size"]:
        raise ValueError(f"dataset image of {len(data)} bytes, its header says "
                         f"total_size {hd['total_size']}: cut short")
    if crc32(bytes(data[spec.DATASET_HEADER_SIZE:hd["total_size"]])) != hd["data_crc"]:
        raise ValueError("dataset image data CRC mismatch")
    if hd["dtype"] not in (spec.DATASET_F32, spec.DATASET_S8):
        raise ValueError(f"dataset image of unknown element type {hd['dtype']}")
    h, w, c = hd["h"], hd["w"], hd["c"]
    elem = np.int8 if hd["dtype"] == spec.DATASET_S8 else np.float32
    out = dict(hd)
    for split in ("train", "test"):
        n = hd[f"n_{split}"]
        xo, yo = hd[f"x_{split}"], hd[f"y_{split}"]
        out[f"x_{split}"] = np.frombuffer(data, elem, n * h * w * c, xo).reshape(n, h, w, c)
        out[f"y_{split}"] = np.frombuffer(data, np.uint8, n, yo)
    return out
