"""The plain C int8 kernel test (tests/c/test_kernels_int8.c) compiled with
the kernels of each distinct selection under AddressSanitizer and UndefinedBehaviorSanitizer (signed
overflow and bad shifts in the fixed-point arithmetic are errors). Pedantic
and Cortex-M7 compilation of the int8 files is test_c_sanitized.py's (it
compiles every kernel file)."""
from __future__ import annotations

import os
import subprocess

import pytest
from kernel_harness import SELECTIONS

from medyate.engine.build import kernel_sources
from test_c_sanitized import INCLUDE, KERNELS, REPO, WARN, _cc

C_TEST = REPO / "tests" / "c" / "test_kernels_int8.c"
INT8_DIR = REPO / "firmware" / "src" / "kernels" / "reference" / "int8"


def test_int8_kernels_exist():
    assert any(k.parent == INT8_DIR for k in KERNELS), "no int8 kernel sources found"


@pytest.mark.parametrize("selection", list(SELECTIONS.values()), ids=list(SELECTIONS))
def test_c_int8_kernel_tests_under_sanitizers(tmp_path, selection):
    # one selection's files (an optimized kernel replaces its reference twin:
    # compiling every file would define both)
    cc = _cc()
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "test_kernels_int8"
    cmd = [cc, *WARN, "-O1", "-g", "-fno-omit-frame-pointer",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           f"-I{INCLUDE}", f"-I{INT8_DIR}", str(C_TEST), *map(str, kernel_sources(selection)), "-lm",
           "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"build failed:\n{' '.join(cmd)}\n{build.stderr}"
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=120)
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"C int8 kernel tests failed (exit {run.returncode}):\n{report}"
    for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        assert marker not in report, report
    assert " 0 failures" in run.stdout
