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

from ..boards import get_board
from ..errors import MedyateError

REPO = Path(__file__).resolve().parents[3]
FIRMWARE = REPO / "firmware"
HEADER = FIRMWARE / "include" / "medyate.h"
# The engine proper: kernels and runtime. Device code (protocol, boards) is not
# part of the host library except what is listed here.
PARTS = ("kernels", "runtime")
RUNTIME = FIRMWARE / "src" / "runtime"
# The board whose kernel selection the engine builds with unless told otherwise:
# the host board selects what the Cortex-M7 boards select, so a host
# simulation computes what a device session computes.
DEFAULT_BOARD = "host"


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


def _engine_build():
    """firmware/engine_build.py: which kernel files and which flags make the
    engine, the rule CMakeLists.txt runs too."""
    spec = importlib.util.spec_from_file_location("medyate_engine_build",
                                                  FIRMWARE / "engine_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ENGINE_BUILD = _engine_build()
# -O3 on the host only (it overrides the shared -O2): inlining and unrolling
# make the host simulation about 30 % faster, and they cannot change a result:
# with -ffp-contract=off and no -ffast-math the compiler may not reassociate or
# fuse float arithmetic, and the int8 kernels are integer code. The device
# images keep -O2, so their instruction counts are those the benchmarks publish.
HOST_SPEED_FLAGS = ("-O3",)
# The engine's flags on every target, and on the host the speed-only flags.
CFLAGS = [*ENGINE_BUILD.FLAGS, *HOST_SPEED_FLAGS, *_host_fma_flags()]
KERNELS_DIR = ENGINE_BUILD.KERNELS


def kernel_selection(board=None) -> tuple:
    """The optimized kernel folders board `board` (default: the host board) selects."""
    return get_board(board or DEFAULT_BOARD).kernels


def kernel_sources(kernels=None, kernels_dir=None) -> list[Path]:
    """The kernel files of a build selecting the folders `kernels` (None: the
    default board's selection; () reference kernels only)."""
    if kernels is None:
        kernels = kernel_selection()
    try:
        return ENGINE_BUILD.select_kernels(tuple(kernels), Path(kernels_dir or KERNELS_DIR))
    except ENGINE_BUILD.KernelSelectionError as exc:
        raise MedyateError(f"kernel selection: {exc}") from None


def engine_sources(parts=PARTS, kernels=None, kernels_dir=None) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        if part == "kernels":
            out += kernel_sources(kernels, kernels_dir)
        elif part == "runtime":
            out += sorted(RUNTIME.rglob("*.c"))
        else:
            raise MedyateError(f"unknown engine part '{part}' (known: {', '.join(PARTS)})")
    return out


# What a kernels-only build defines (medyate.h leaves the runtime out).
KERNELS_ONLY = "MDY_KERNELS_ONLY"


def header_cdef(text: str, parts=PARTS) -> str:
    """The header as cffi cdef: its #ifdef/#ifndef sections evaluated (C++ and
    a kernels-only build's MDY_KERNELS_ONLY), other preprocessor lines dropped
    except integer #defines, which cffi turns into constants."""
    defined = set() if "runtime" in parts else {KERNELS_ONLY}
    keep = [True]            # one entry per open conditional, outermost first
    lines = []
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith("#"):
            if all(keep):
                lines.append(line)
            continue
        m = re.match(r"#\s*(ifdef|ifndef|if|else|endif|define)\b\s*(.*)$", s)
        word, rest = (m.group(1), m.group(2)) if m else ("", "")
        if word in ("ifdef", "ifndef", "if"):
            c = re.match(r"(!?)\s*defined\s*\(?\s*(\w+)\s*\)?\s*(/\*.*)?$", rest) if word == "if" \
                else re.match(r"()(\w+)", rest)
            if c is None:
                raise MedyateError(f"{HEADER.name}: cannot read '{s}' for cffi (only "
                                   "#ifdef, #ifndef and #if [!]defined(X) are understood)")
            on = c.group(2) in defined
            keep.append(on != (word == "ifndef" or c.group(1) == "!"))
        elif word == "else":
            keep[-1] = not keep[-1]
        elif word == "endif":
            keep.pop()
        elif word == "define" and all(keep):
            d = re.match(r"(\w+)\s*(.*)$", rest)
            defined.add(d.group(1))
            v = re.match(r"(MDY_\w+)\s+(0x[0-9A-Fa-f]+|\d+)u?\s*(/\*.*)?$", rest)
            if v:
                lines.append(f"#define {v.group(1)} {v.group(2)}")
    src = "\n".join(lines)
    return re.sub(r"/\*.*?\*/", "", src, flags=re.S)


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


def load_generated(model_dir, extra_cflags: list[str] | None = None, kernels=None):
    """(ffi, lib) of the engine linked with generated model sources from
    `model_dir` (codegen output): the device's model, running on the host."""
    model_dir = Path(model_dir)
    sources = sorted(model_dir.glob("*.c"))
    # MDY_HAVE_MODEL_CONFIG: the runtime links only the model's kernels, as a
    # device image of it does (runtime/mdy_kernel_set.h)
    return _load([*engine_sources(kernels=kernels), *sources], GENERATED_CDEF,
                 [str(FIRMWARE / "include"), str(model_dir)],
                 ["-DMDY_HAVE_MODEL_CONFIG", *(extra_cflags or [])],
                 "generated", preamble=GENERATED_PREAMBLE)


def load_engine(extra_cflags: list[str] | None = None, parts=PARTS, kernels=None,
                kernels_dir=None):
    """Return (ffi, lib) of the host engine, building it if needed.

    `parts` limits the build to some layers (kernel tests build the kernels
    alone, so they do not depend on the runtime above them). `kernels`: the
    optimized kernel folders to select (None: the host board's selection, ()
    reference only); `kernels_dir`: another kernels tree (tests)."""
    extra = list(extra_cflags or [])
    if "runtime" not in parts:
        extra.append(f"-D{KERNELS_ONLY}")
    return _load(engine_sources(parts, kernels, kernels_dir), "",
                 [str(FIRMWARE / "include")], extra, "engine", parts)


def _load(sources: list[Path], cdef_extra: str, include_dirs: list[str], extra: list[str],
          kind: str, parts=tuple(PARTS), preamble: str = '#include "medyate.h"'):
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        raise MedyateError("no C compiler found: install gcc (Debian: apt-get install gcc) "
                           "or set CC to one")
    h = hashlib.sha256()
    # kernels' internal headers count too: those beside a source (the int8
    # requantization inlines) and those a folder up, shared by the types (the max
    # pools' window index)
    internal = sorted({hh for src in sources for d in (src.parent, src.parent.parent)
                       for hh in d.glob("*.h")})
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
