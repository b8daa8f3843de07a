"""Code generation of a dataset image built into flash: the bytes of an "MDYD"
image (protocol.dataset_image) as a C source whose array lands in the board's
`.mdy_dataset` flash section, where board_dataset() finds it.

    generate_dataset_source(image_bytes, model_dir) -> Path of dataset.c

The file goes into the model directory, so the top-level CMake build (which
compiles every *.c there) links it without further configuration.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import jinja2

from .. import __version__
from ..protocol import spec
from . import TEMPLATES

DATASET_SOURCE = "dataset.c"
_ESC = ["\\x%02x" % i for i in range(256)]
_PER_LINE = 32


def _literal(data: bytes) -> str:
    """Adjacent string literals of every byte as a \\xNN escape. Each escape is
    followed by another escape or a quote, so none swallows a following hex
    digit, and the bytes are exact whatever the source character set."""
    return "\n".join('    "' + "".join(map(_ESC.__getitem__, data[i:i + _PER_LINE])) + '"'
                     for i in range(0, len(data), _PER_LINE))


def render_dataset_source(image_bytes: bytes) -> str:
    data = bytes(image_bytes)
    if len(data) < spec.DATASET_HEADER_SIZE or data[:4] != spec.DATASET_MAGIC:
        raise ValueError("not a dataset image (write it with protocol.dataset_image)")
    hd = spec.DATASET_HEADER.unpack(data[:spec.DATASET_HEADER_SIZE])
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.get_template("dataset.c.j2").render(
        version=__version__, size=len(data), crc=zlib.crc32(data) & 0xFFFFFFFF,
        n_train=hd["n_train"], n_test=hd["n_test"], h=hd["h"], w=hd["w"], c=hd["c"],
        classes=hd["classes"], body=_literal(data))


def generate_dataset_source(image_bytes: bytes, out_dir) -> Path:
    """Write dataset.c holding `image_bytes` into `out_dir` (the model
    directory of the build); returns its path. An unchanged image leaves the
    file untouched, so a rebuild does not recompile it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / DATASET_SOURCE
    text = render_dataset_source(image_bytes)
    if not (path.is_file() and path.read_text() == text):
        path.write_text(text)
    return path


def remove_dataset_source(out_dir) -> bool:
    """Delete a dataset.c left in `out_dir` by an earlier build (the samples
    are to be streamed now); True if there was one."""
    path = Path(out_dir) / DATASET_SOURCE
    if path.is_file():
        path.unlink()
        return True
    return False
