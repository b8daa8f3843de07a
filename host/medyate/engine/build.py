"""Compile the C engine (firmware/) for the host and load it with cffi.

The very same sources that run in QEMU and on the board are compiled natively
(API mode), cached by a hash of their content and the flags, so a change to any
C file rebuilds on first use and nothing else does.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

from ..errors import MedyateError

REPO = Path(__file__).resolve().parents[3]
FIRMWARE = REPO / "firmware"
HEADER = FIRMWARE / "include" / "medyate.h"
# The engine proper: kernels and runtime. Device code (protocol, boards) is not
# part of the host library except what is listed here.
PARTS = {"kernels": "src/kernels", "runtime": "src/runtime"}


def _host_fma_flags() -> list[str]:
    """-mfma where this x86-64 CPU has fused multiply-add: the kernels' explicit
    fmaf() then compiles to one vfmadd instead of a libm call. Only speed
    depends on it: glibc's fmaf is correctly rounded too, so the results are
    the same bits either way (and the same as the Cortex-M7's VFMA)."""
    import platform
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return ["-mfma"] if re.search(r"^flags\s*:.*\bfma\b", flags, re.M) else []


# -ffp-contract=off as in CMakeLists.txt: the host computes exactly what the
# device computes: a multiply-add is fused where a kernel says fmaf() and
# nowhere else, on every target.
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing",
          "-ffp-contract=off", *_host_fma_flags()]


def engine_sources(parts=tuple(PARTS)) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        out += sorted((FIRMWARE / PARTS[part]).rglob("*.c"))
    return out


RUNTIME_MARK = "/* ------------------------------------------------------------ runtime"


def header_cdef(text: str, parts=tuple(PARTS)) -> str:
    """The header as cffi cdef: drop preprocessor lines but keep integer #defines.
    Without the runtime part, declarations from the runtime section on are left
    out, so the module does not reference symbols that are not built."""
    if "runtime" not in parts:
        text = text[:text.index(RUNTIME_MARK)]
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            m = re.match(r"#define\s+(MDY_\w+)\s+(0x[0-9A-Fa-f]+|\d+)u?\s*(/\*.*)?$", s)
            if m:
                lines.append(f"#define {m.group(1)} {m.group(2)}")
            continue
        lines.append(line)
    src = "\n".join(lines)
    src = re.sub(r'extern\s+"C"\s*\{', "", src)
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    # a lone '}' left from extern "C" (struct closers are '} name;' or '};')
    src = re.sub(r"^\s*\}\s*$", "", src, flags=re.M)
    return src


def cache_dir() -> Path:
    base = os.environ.get("MEDYATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "medyate")
    return Path(base)


GENERATED_CDEF = """
const mdy_model *mdy_generated_model_ptr(void);
uint8_t *mdy_generated_arena_ptr(void);
"""
# cffi cannot take the address of a const global itself: small accessors do.
GENERATED_PREAMBLE = """#include "medyate.h"
#include "mdy_generated.h"
static const mdy_model *mdy_generated_model_ptr(void) { return &mdy_generated_model; }
static uint8_t *mdy_generated_arena_ptr(void) { return mdy_generated_arena; }
"""


def load_generated(model_dir, extra_cflags: list[str] | None = None):
    """(ffi, lib) of the engine linked with generated model sources from
    `model_dir` (codegen output): the device's model, running on the host."""
    model_dir = Path(model_dir)
    sources = sorted(model_dir.glob("*.c"))
    return _load([*engine_sources(), *sources], GENERATED_CDEF,
                 [str(FIRMWARE / "include"), str(model_dir)], list(extra_cflags or []),
                 "generated", preamble=GENERATED_PREAMBLE)


def load_engine(extra_cflags: list[str] | None = None, parts=tuple(PARTS)):
    """Return (ffi, lib) of the host engine, building it if needed.

    `parts` limits the build to some layers (kernel tests build the kernels
    alone, so they do not depend on the runtime above them)."""
    return _load(engine_sources(parts), "", [str(FIRMWARE / "include")],
                 list(extra_cflags or []), "engine", parts)


def _load(sources: list[Path], cdef_extra: str, include_dirs: list[str], extra: list[str],
          kind: str, parts=tuple(PARTS), preamble: str = '#include "medyate.h"'):
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        raise MedyateError("no C compiler found: install gcc (Debian: apt-get install gcc) "
                           "or set CC to one")
    h = hashlib.sha256()
    # kernels' internal headers (e.g. the int8 requantization inlines) count too
    internal = sorted({hh for src in sources for hh in src.parent.glob("*.h")})
    for f in [HEADER, *sources, *internal]:
        h.update(str(f).encode())
        h.update(f.read_bytes())
    h.update(" ".join(CFLAGS + extra + list(parts)).encode() + cdef_extra.encode())
    h.update(sys.version.encode())
    tag = h.hexdigest()[:16]
    out = cache_dir() / f"{kind}-{tag}"
    name = f"_medyate_{kind}_{tag}"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)     # parallel test processes build once
        built = _build(sources, cdef_extra, include_dirs, extra, parts, preamble, out, name)
    spec = importlib.util.spec_from_file_location(name, built[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ffi, mod.lib


def _build(sources, cdef_extra, include_dirs, extra, parts, preamble, out, name):
    built = list(out.glob(f"{name}*.so"))
    if not built:
        import cffi
        ffi = cffi.FFI()
        ffi.cdef(header_cdef(HEADER.read_text(), parts) + cdef_extra)
        ffi.set_source(name, preamble,
                       sources=[str(p) for p in sources],
                       include_dirs=include_dirs,
                       extra_compile_args=CFLAGS + extra)
        try:
            so = ffi.compile(tmpdir=str(out), verbose=False)
        except Exception as exc:  # compiler errors: show them, not a traceback
            raise MedyateError(f"building the host engine failed: {exc}") from exc
        built = [Path(so)]
    return built
