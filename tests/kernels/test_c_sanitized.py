"""The plain C kernel test (tests/c/test_kernels.c) compiled with the kernels
(each distinct selection) under AddressSanitizer and UndefinedBehaviorSanitizer,
and every kernel file, reference and optimized, compiled for the host
(pedantic) and the Cortex-M7 with warnings as errors."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from kernel_harness import SELECTIONS

from medyate.engine.build import CFLAGS, KERNELS_DIR, header_cdef, kernel_sources

REPO = Path(__file__).resolve().parents[2]
# every kernel file of every folder (what a selection compiles is a subset)
KERNELS = sorted(KERNELS_DIR.rglob("*.c"))
FP32 = [k for k in KERNELS if k.parent.name == "fp32"]
INCLUDE = REPO / "firmware" / "include"
C_TEST = REPO / "tests" / "c" / "test_kernels.c"
# the engine's C standard and warnings (firmware/engine_build.py)
WARN = [f for f in CFLAGS if f.startswith(("-std=", "-W"))]


def _cc():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def test_kernels_exist():
    assert FP32, "no fp32 kernel sources found"


@pytest.mark.parametrize("selection", list(SELECTIONS.values()), ids=list(SELECTIONS))
def test_c_kernel_tests_under_sanitizers(tmp_path, selection):
    cc = _cc()
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "test_kernels"
    # the C test covers the fp32 kernels
    sources = [k for k in kernel_sources(selection) if k.parent.name == "fp32"]
    cmd = [cc, *WARN, "-O1", "-g", "-fno-omit-frame-pointer",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           f"-I{INCLUDE}", str(C_TEST), *map(str, sources), "-lm", "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"build failed:\n{' '.join(cmd)}\n{build.stderr}"
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=120)
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"C kernel tests failed (exit {run.returncode}):\n{report}"
    for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        assert marker not in report, report
    assert " 0 failures" in run.stdout


def test_kernels_compile_for_host_pedantic(tmp_path):
    cc = _cc()
    if cc is None:
        pytest.skip("no C compiler")
    for src in KERNELS:
        r = subprocess.run([cc, *WARN, "-pedantic", "-O2", f"-I{INCLUDE}", "-c", str(src),
                            "-o", str(tmp_path / (src.stem + ".o"))],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{src.name}:\n{r.stderr}"


def test_kernels_compile_for_cortex_m7(tmp_path):
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    flags = [*WARN, "-O2", "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16",
             "-mfloat-abi=hard",
             # single-precision FPU: any silent float -> double promotion is a bug
             "-Wdouble-promotion"]
    for src in KERNELS:
        r = subprocess.run([gcc, *flags, f"-I{INCLUDE}", "-c", str(src),
                            "-o", str(tmp_path / (src.stem + ".o"))],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{src.name}:\n{r.stderr}"


def test_one_kernel_per_file_named_after_it():
    """Every function a kernel file defines is its own name or a *_get_buffer_size
    / *_mask_bytes twin of it (static helpers aside)."""
    import re
    kernel_part = header_cdef((INCLUDE / "medyate.h").read_text(), parts=("kernels",))
    declared = set(re.findall(r"\b(mdy_\w+)\s*\(", kernel_part))
    defined = set()
    for src in KERNELS:
        text = src.read_text()
        # a definition starts at the line's first column with its return type; an
        # indented line is a statement (a call of an inline helper, a return)
        names = set(re.findall(r"^(?:[A-Za-z_][\w ]*?[\s*])(mdy_\w+)\s*\(", text, flags=re.M))
        for n in names:
            assert n == src.stem or n in (src.stem + "_get_buffer_size", src.stem + "_mask_bytes"), \
                f"{src.name} defines {n}"
        defined |= names
    assert declared == defined, f"declared, not defined: {declared - defined}; " \
                                f"defined, not declared: {defined - declared}"
