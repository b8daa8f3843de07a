"""The int8 fixed-point arithmetic on the host (medyate.planner.quant):
quantize_multiplier against the scale it represents, requantize against its
rounding rules written out in Python integers, the pools' one rounding against
the exact mean, and the parameter helpers (clamp bounds, overflow check, tables)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from int8_refs import requantize_exact
from medyate.errors import MedyateError
from medyate.planner import quant as Q


def test_quantize_multiplier_represents_the_scale():
    rng = np.random.default_rng(1)
    scales = np.concatenate([2.0 ** rng.uniform(-31.5, 29.5, 4000),
                             2.0 ** np.arange(-31, 30), [1.0, 0.5, 1 - 2 ** -40]])
    for s in scales:
        m, sh = Q.quantize_multiplier(s)
        assert (1 << 30) <= m < (1 << 31) and -31 <= sh <= 30, (s, m, sh)
        # mantissa rounded to 31 bits: relative error <= 2^-31
        assert abs(m * 2.0 ** (sh - 31) - s) <= s * 2.0 ** -31, (s, m, sh)
    assert Q.quantize_multiplier(0.0) == (0, 0)
    assert Q.quantize_multiplier(2.0 ** -33) == (0, 0)          # below 2^-32: zero
    assert Q.quantize_multiplier(1 - 2 ** -40) == (1 << 30, 1)  # rounds up to the next power


@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf"), 2.0 ** 31])
def test_quantize_multiplier_refuses_bad_scales_naming_them(bad):
    with pytest.raises(MedyateError, match="conv3: requantization scale"):
        Q.quantize_multiplier(bad, "conv3")


def _requant_cases(rng, n):
    v = np.concatenate([rng.integers(Q.INT32_MIN, Q.INT32_MAX, n, endpoint=True),
                        [Q.INT32_MIN, Q.INT32_MAX, 0, 1, -1, 3, -3, (1 << 30) + 1]])
    m = rng.integers(1 << 30, 1 << 31, v.size)
    m[::7] = 1 << 30                       # v*2^30/2^31: ties of the first rounding
    m[::11] = Q.INT32_MAX
    sh = rng.integers(-31, 31, v.size)
    sh[::3] = rng.integers(-31, 1, sh[::3].size)   # the common case: scale < 1
    return v, m, sh


def test_requantize_numpy_equals_the_written_rules():
    rng = np.random.default_rng(2)
    v, m, sh = _requant_cases(rng, 6000)
    got = Q.requantize(v, m, sh)
    want = [requantize_exact(int(a), int(b), int(c)) for a, b, c in zip(v, m, sh)]
    np.testing.assert_array_equal(got, want)
    # ties: the high multiply rounds them up (-1.5 -> -1), the shift away from zero
    assert requantize_exact(3, 1 << 30, 0) == 2 and requantize_exact(-3, 1 << 30, 0) == -1
    assert Q.requantize(3, 1 << 30, 0) == 2 and Q.requantize(-3, 1 << 30, 0) == -1
    assert Q.requantize(6, 1 << 30, -1) == 2 and Q.requantize(-6, 1 << 30, -1) == -2
    assert Q.requantize(-3, 1 << 30, -1) == -1   # -1.5 -> -1 (high), -0.5 -> -1 (shift)
    assert Q.requantize(Q.INT32_MIN, Q.INT32_MIN, 0) == Q.INT32_MAX


def test_requantize_is_within_one_lsb_of_the_exact_product():
    rng = np.random.default_rng(3)
    v = rng.integers(-(1 << 24), 1 << 24, 5000)
    scales = 2.0 ** rng.uniform(-20, 0, v.size)
    pairs = [Q.quantize_multiplier(s) for s in scales]
    got = Q.requantize(v, [p[0] for p in pairs], [p[1] for p in pairs])
    assert np.max(np.abs(got - v * scales)) <= 1.0


def test_pool_requantize_is_one_rounding_of_the_exact_mean(rng):
    counts = rng.integers(1, 50, 3000)
    sums = rng.integers(-255 * counts, 255 * counts, endpoint=True)   # int8 windows
    for scale in (1.0, 0.37, 1.9, 2.0 ** -9, 2.0 ** -10, 2.0 ** -12, 2.0 ** -30):
        m, s = Q.quantize_multiplier(scale)
        got = Q.pool_requantize(sums, counts, m, s)
        exact = sums * (m * 2.0 ** (s - 31)) / counts
        assert np.max(np.abs(got - exact)) <= 0.5 + 1e-9


# ---------------------------------------------------------------- parameter helpers


def test_act_range_and_accumulator_checks():
    assert Q.act_range(0.05, -10) == (-128, 127)
    assert Q.act_range(0.05, -10, 0.0) == (-10, 127)            # ReLU: the zero point
    assert Q.act_range(0.05, -10, 0.0, 6.0) == (-10, 110)       # ReLU6: zero + 6/scale
    assert Q.act_range(0.1, 100, 0.0, 6.0) == (100, 127)
    with pytest.raises(MedyateError, match="empty"):
        Q.act_range(0.01, 127, 2.0, 3.0)
    Q.check_accumulator([1 << 20], 3 * 3 * 64, -128, "conv7")
    with pytest.raises(MedyateError, match="conv7: int32 accumulator may overflow"):
        Q.check_accumulator([2 ** 31 - 1000], 9, 0, "conv7")


def test_tables_are_the_rounded_float_functions():
    xs, xz, ys, yz = 0.05, 3, 0.03, -100
    t = Q.hardswish_table(xs, xz, ys, yz)
    v = (np.arange(-128, 128) - xz) * xs
    want = np.clip(np.rint(v * np.clip(v / 6 + 0.5, 0, 1) / ys) + yz, -128, 127)
    np.testing.assert_array_equal(t, want)
    t = Q.hardsigmoid_table(0.2, 0.5, xs, xz, 1 / 256, -128)
    assert t[0] == -128 and t[-1] == 127 and np.all(np.diff(t.astype(int)) >= 0)
    assert math.isclose(Q.clamp_table(0, 6, 1, 0, 1, 0)[128 + 3], 3)
