"""The kernels' own exp and log (firmware/src/kernels/reference/fp32/mdy_math_f32.h),
which the softmax kernels use instead of the C library's so that every target
computes the same bits: within 1 ulp of float64 numpy over fp32's range, and
C99's special values."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medyate.engine.build import CFLAGS, KERNELS_DIR

HEADER_DIR = KERNELS_DIR / "reference" / "fp32"

HARNESS = r"""
#include <stdio.h>
#include "mdy_math_f32.h"
/* argv: e|l, input file of float32, output file */
int main(int argc, char **argv)
{
    FILE *in, *out;
    float x, y;
    if (argc != 4 || !(in = fopen(argv[2], "rb")) || !(out = fopen(argv[3], "wb")))
        return 2;
    while (fread(&x, sizeof x, 1, in) == 1) {
        y = argv[1][0] == 'l' ? mdy_logf(x) : mdy_expf(x);
        fwrite(&y, sizeof y, 1, out);
    }
    fclose(in);
    return fclose(out) != 0;
}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cc = next((n for n in (os.environ.get("CC"), "cc", "gcc", "clang") if n and shutil.which(n)),
              None)
    if cc is None:
        pytest.skip("no C compiler")
    tmp = tmp_path_factory.mktemp("mathf32")
    src, exe = tmp / "harness.c", tmp / "harness"
    src.write_text(HARNESS)
    # the engine's own flags (no contraction: fmaf only where written)
    cmd = [cc, *CFLAGS, f"-I{HEADER_DIR}", str(src), "-o", str(exe), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"

    def call(kind: str, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        x.tofile(tmp / "in.bin")
        subprocess.run([str(exe), kind, str(tmp / "in.bin"), str(tmp / "out.bin")], check=True)
        return np.fromfile(tmp / "out.bin", dtype=np.float32)
    return call


def _floats(lo: float, hi: float) -> np.ndarray:
    """Every 97th fp32 value in [lo, hi] plus a dense sample of [lo, hi]."""
    bits = np.arange(0, 2 ** 32, 9973, dtype=np.uint64).astype(np.uint32).view(np.float32)
    dense = np.linspace(lo, hi, 200_001, dtype=np.float32)
    x = np.concatenate([bits[np.isfinite(bits)], dense])
    return x[(x >= lo) & (x <= hi)]


def _ulp_error(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|y - ref| in units of the last place of fp32 at ref (subnormal spacing
    below the normal range)."""
    ulp = np.maximum(np.spacing(np.abs(ref.astype(np.float32))).astype(np.float64), 2.0 ** -149)
    return np.abs(y.astype(np.float64) - ref) / ulp


def test_expf_within_one_ulp(run):
    # from where exp underflows to 0 to just below overflow; softmax uses (-inf, 0]
    x = np.concatenate([_floats(-104.0, 88.72), np.linspace(-30, 0, 300_001, dtype=np.float32)])
    err = _ulp_error(run("e", x), np.exp(x.astype(np.float64)))
    assert err.max() < 1.0, f"max {err.max():.3f} ulp at x = {x[err.argmax()]!r}"
    assert np.mean(err > 0.5) < 0.05          # mostly the correctly rounded value


def test_logf_within_one_ulp(run):
    # every positive finite fp32, subnormals included; softmax uses [1, classes]
    x = np.concatenate([_floats(1e-45, 3.4e38), np.linspace(1, 1000, 300_001, dtype=np.float32)])
    x = x[x > 0]
    err = _ulp_error(run("l", x), np.log(x.astype(np.float64)))
    assert err.max() < 1.0, f"max {err.max():.3f} ulp at x = {x[err.argmax()]!r}"
    assert np.mean(err > 0.5) < 0.05


def test_special_values(run):
    inf, nan = np.inf, np.nan
    e = run("e", [nan, inf, -inf, 0.0, -0.0, 89.0, 88.7228394, -103.0, -105.0, 1.0])
    assert np.isnan(e[0]) and e[1] == inf and e[2] == 0.0 and e[3] == 1.0 and e[4] == 1.0
    assert e[5] == inf and e[6] == inf                # overflow (exp(88.7228394) > FLT_MAX)
    assert 0.0 < e[7] < 2.0 ** -126 and e[8] == 0.0   # gradual underflow, then 0
    assert e[9] == np.float32(np.e)
    lg = run("l", [nan, -1.0, -inf, 0.0, -0.0, inf, 1.0, 2.0 ** -149, 2.0 ** 127])
    assert np.isnan(lg[0]) and np.isnan(lg[1]) and np.isnan(lg[2])
    assert lg[3] == -inf and lg[4] == -inf and lg[5] == inf and lg[6] == 0.0
    assert lg[7] == np.float32(-149 * np.log(2)) and lg[8] == np.float32(127 * np.log(2))
