"""The Cortex-M7 folder's optimized fp32 and int8 kernels against the reference
kernels of the same name (tests/c/test_kernels_optimized.c: randomized shapes,
strides, padding, odd channel counts, run-time index lists, int8 zero points,
requantization and clamps; every output bit-identical).

It runs natively under AddressSanitizer/UndefinedBehaviorSanitizer and as a
Cortex-M7 image in QEMU, each with the kernel files that firmware/engine_build.py
selects for the cortex-m7 folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "firmware"))
from engine_build import select_kernels  # noqa: E402

C_TEST = REPO / "tests" / "c" / "test_kernels_optimized.c"
FOLDER = "cortex-m7"
FP32 = REPO / "firmware" / "src" / "kernels" / FOLDER / "fp32"
INT8 = REPO / "firmware" / "src" / "kernels" / FOLDER / "int8"


def _cc():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _check(report: str, returncode: int):
    assert returncode == 0, f"optimized kernels differ from the reference (exit {returncode}):\n{report}"
    assert " 0 failures" in report, report
    checks = int(report.split(" checks,")[0].split()[-1])
    assert checks > 5000, report   # every case ran


def test_every_optimized_fp32_kernel_is_tested():
    """Each optimized fp32 file is one the equivalence test compares."""
    text = C_TEST.read_text()
    for src in sorted(FP32.glob("*.c")):
        assert f'"kernels/reference/fp32/{src.name}"' in text, \
            f"{src.name} has no equivalence test in {C_TEST.name}"


def test_every_optimized_int8_kernel_is_tested():
    """Each optimized int8 file is one the equivalence test compares."""
    text = C_TEST.read_text()
    srcs = sorted(INT8.glob("*.c"))
    assert srcs, f"no int8 kernels in {INT8}"
    for src in srcs:
        assert f'"kernels/reference/int8/{src.name}"' in text, \
            f"{src.name} has no equivalence test in {C_TEST.name}"


def test_optimized_equal_reference_under_sanitizers(tmp_path):
    cc = _cc()
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "test_kernels_optimized"
    cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fno-omit-frame-pointer",
           "-ffp-contract=off", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           f"-I{REPO / 'firmware' / 'include'}", f"-I{REPO / 'firmware' / 'src'}", str(C_TEST),
           *map(str, select_kernels([FOLDER])), "-lm", "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"build failed:\n{' '.join(cmd)}\n{build.stderr}"
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=120)
    report = run.stdout + run.stderr
    for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        assert marker not in report, report
    _check(report, run.returncode)


def build_image(out: Path, defines=("MDY_ON_BOARD",), stack: int | None = None) -> Path:
    """The equivalence test as a qemu-mps2-an500 image linked with the kernels
    the Cortex-M7 boards select; `stack`: a stack reserve other than the
    board's (the benchmark build's timing harness needs more)."""
    from medyate.boards import build_firmware
    sources = [C_TEST, *select_kernels([FOLDER])]
    defs = {"MEDYATE_WITH_ENGINE": False, "MEDYATE_DEFINES": list(defines)}
    if stack is not None:
        defs["MEDYATE_STACK_SIZE"] = stack
    res = build_firmware("qemu-mps2-an500", None, out, app_sources=sources, extra_defs=defs)
    return res.elf


def run_image(elf: Path, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run an image to its semihosting exit, its UART on stdout; -icount
    shift=0 makes the board's cycle counter count instructions."""
    cmd = ["qemu-system-arm", "-M", "mps2-an500", "-icount", "shift=0", "-display", "none",
           "-monitor", "none", "-serial", "stdio", "-semihosting-config",
           "enable=on,target=native", "-kernel", str(elf)]
    return subprocess.run(cmd, capture_output=True, timeout=timeout)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or
                    shutil.which("qemu-system-arm") is None,
                    reason="arm-none-eabi-gcc or qemu-system-arm not installed")
def test_optimized_equal_reference_in_qemu(tmp_path):
    run = run_image(build_image(tmp_path / "fw"), timeout=120)
    _check(run.stdout.decode(errors="replace") + run.stderr.decode(errors="replace"),
           run.returncode)
