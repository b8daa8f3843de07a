"""Writing outputs so that a failure never leaves half a file behind.

Every file medyate produces (plan.json, checkpoints, metrics, ONNX, reports)
is written to a temporary file in the same directory, flushed to disk, and
renamed over the target: a reader sees the old file or the new one, never a
torn one. A run or build directory that a failing command created is removed
again, so a failure leaves nothing that looks like a result."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import MedyateError


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_output_file(path, what: str = "output") -> Path:
    """A file we are about to write: its directory exists and is writable, and
    the path is not a directory. Checked before any work is done."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise MedyateError(f"{what} {p} is a directory; give a file name")
    if not parent.exists():
        raise MedyateError(f"cannot write {what} {p}: directory {parent} does not exist")
    if not parent.is_dir():
        raise MedyateError(f"cannot write {what} {p}: {parent} is not a directory")
    _probe(parent, what, p)
    return p


def check_output_dir(path, what: str = "output directory") -> Path:
    """A directory we are about to fill: created if missing (with its parents),
    refused if it is a file or cannot be written to."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise MedyateError(f"{what} {p} is a file, not a directory")
    for up in [p, *p.parents]:
        if up.exists():
            if not up.is_dir():
                raise MedyateError(f"cannot create {what} {p}: {up} is a file")
            _probe(up, what, p)
            break
    return p


def _probe(directory: Path, what: str, target: Path) -> None:
    """Really create a file there: permission bits do not tell for root, nor
    for a read-only mount."""
    try:
        fd, name = tempfile.mkstemp(prefix=".medyate-probe-", dir=directory)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise MedyateError(f"cannot write {what} {target}: {directory} is not writable "
                           f"({_why(exc)})") from None


@contextlib.contextmanager
def atomic_path(path, what: str = "output"):
    """Yield a temporary path beside `path` for a writer that wants a file
    name (ONNX export, savefig, np.save); on success it replaces `path`."""
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + p.suffix,
                                   dir=p.parent if str(p.parent) else ".")
        os.close(fd)
    except OSError as exc:
        raise MedyateError(f"cannot write {what} {p}: {_why(exc)}") from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        _unlink(tmp)
        raise MedyateError(f"cannot write {what} {p}: {_why(exc)}") from None
    except BaseException:
        _unlink(tmp)
        raise


def atomic_write(path, data: bytes | str, what: str = "output") -> None:
    """Write `data` to `path` all or nothing."""
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(path, what) as tmp:
        with open(tmp, "wb") as f:
            f.write(raw)


def _unlink(p) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


@contextlib.contextmanager
def output_dir(path, what: str = "output directory", keep=lambda: False):
    """Create (or reuse) a directory for a command's outputs. If this call
    created it and the command fails, it is removed again, unless `keep()`
    says something in it must survive (a checkpoint to resume from)."""
    p = check_output_dir(path, what)
    created = not p.exists()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MedyateError(f"cannot create {what} {p}: {_why(exc)}") from None
    try:
        yield p
    except BaseException:
        if created and not keep():
            shutil.rmtree(p, ignore_errors=True)
        raise
