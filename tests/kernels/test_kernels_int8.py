"""int8 kernels bit for bit against numpy references of the same integer
arithmetic (medyate.planner.quant; that arithmetic itself is checked against
its rules in test_kernels_int8_requant.py). Random shapes, strides, padding, zero points
(the ends of the range included), odd channel counts and fused clamps."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from int8_harness import Kernels8, rand_codes, rand_scale, rand_zero
from int8_refs import (add_s8_ref, avgpool_s8_ref, conv_s8_ref, fc_s8_ref,
                       global_avgpool_s8_ref, maxpool_s8_ref, mul_s8_ref, rescale_s8_ref)
from kernel_harness import conv_params, pool_params
from kernel_refs import conv_ref
from medyate.planner import quant as Q

HYP = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def K8(K):
    return Kernels8(K)


def spread(sat, lo=-128, hi=127):
    """Share of outputs strictly inside the clamp: a test whose outputs are
    all saturated would compare nothing but the clamp."""
    sat = np.asarray(sat)
    return float(((sat > lo) & (sat < hi)).mean())


# ---------------------------------------------------------------- multiplier and requantize


def test_c_requantize_over_the_int32_range(K8):
    """The C inline through a 1-input fully connected layer whose accumulator
    is the bias alone (x = x_zero): biases across the whole int32 range,
    per-channel multipliers and shifts chosen so that results land in int8."""
    rng = np.random.default_rng(4)
    n = 4096
    m = rng.integers(1 << 30, 1 << 31, n)
    m[::5] = 1 << 30
    sh = rng.integers(-31, 8, n)
    target = rng.uniform(-127, 127, n)
    acc = np.rint(target / (m * 2.0 ** (sh - 31))) + rng.integers(-3, 4, n)
    acc = np.clip(acc, Q.INT32_MIN, Q.INT32_MAX).astype(np.int64)
    acc[:4] = [Q.INT32_MIN, Q.INT32_MAX, 0, -1]
    xz = 17
    q = dict(x_zero=xz, y_zero=0, act_min=-128, act_max=127, multiplier=m, shift=sh)
    w = rand_codes(rng, (n, 1))
    y = K8.fc(q, np.array([xz], np.int8), w, acc)
    want = Q.clamp(Q.requantize(acc, m, sh))
    np.testing.assert_array_equal(y, want)
    assert spread(y) > 0.9
    assert np.abs(acc).max() > 2 ** 30   # the large accumulators were really there


# ---------------------------------------------------------------- convs


def conv_case(rng, P, act_fused=False):
    dw = P["groups"] != 1
    C, O = P["in_c"], P["out_c"]
    xz = rand_zero(rng)
    x = rand_codes(rng, (P["in_h"], P["in_w"], C))
    w = rand_codes(rng, (O, P["k_h"], P["k_w"], 1 if dw else C))
    x_scale = rand_scale(rng)
    w_scales = np.array([rand_scale(rng, 1e-3, 2e-2) for _ in range(O)], np.float32)
    b = rng.integers(-4000, 4000, O)
    # an output scale that spreads the accumulators over the int8 range
    acc = conv_ref(P, x.astype(np.int64) - xz, w.astype(np.int64), b)
    std = max(float(np.std(acc * w_scales)), 1e-6)
    y_scale = float(np.float32(x_scale * std / 40.0))
    yz = int(rng.integers(-20, 21))
    act = Q.act_range(y_scale, yz, 0.0, 6.0) if act_fused else (-128, 127)
    q = Q.conv_quant(x_scale, w_scales, y_scale, xz, yz, act)
    return q, x, w, b


@st.composite
def conv_shapes(draw):
    dw = draw(st.booleans())
    k_h, k_w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    t, b = draw(st.integers(0, k_h - 1)), draw(st.integers(0, k_h - 1))
    l, r = draw(st.integers(0, k_w - 1)), draw(st.integers(0, k_w - 1))
    H = draw(st.integers(max(1, k_h - t - b), 9))
    W = draw(st.integers(max(1, k_w - l - r), 9))
    C = draw(st.integers(1, 7))
    O = C * draw(st.integers(1, 3)) if dw else draw(st.integers(1, 9))
    return conv_params(H, W, C, O, k_h, k_w, (sh, sw), (t, l, b, r), depthwise=dw)


@settings(max_examples=40, **HYP)
@given(P=conv_shapes(), seed=st.integers(0, 2 ** 16), act=st.booleans())
def test_conv_random_shapes_bit_exact(K8, P, seed, act):
    rng = np.random.default_rng(seed)
    q, x, w, b = conv_case(rng, P, act)
    np.testing.assert_array_equal(K8.conv(P, q, x, w, b), conv_s8_ref(P, q, x, w, b))
    np.testing.assert_array_equal(K8.conv(P, q, x, w, None), conv_s8_ref(P, q, x, w, None))


@pytest.mark.parametrize("dw", [False, True])
def test_conv_pointwise_and_3x3_bit_exact_and_spread(K8, rng, dw):
    for P in (conv_params(9, 7, 13, 13 if dw else 11, 1, 1, depthwise=dw),
              conv_params(8, 8, 5, 10 if dw else 7, 3, 3, (2, 2), (1, 1, 1, 1), depthwise=dw)):
        q, x, w, b = conv_case(rng, P)
        y = K8.conv(P, q, x, w, b)
        np.testing.assert_array_equal(y, conv_s8_ref(P, q, x, w, b))
        assert spread(y) > 0.8
        # ReLU6 fused: the clamp in output codes, nothing else changes
        q6 = dict(q, **dict(zip(("act_min", "act_max"), Q.act_range(1.0, q["y_zero"], 0, 6))))
        y6 = K8.conv(P, q6, x, w, b)
        np.testing.assert_array_equal(y6, np.clip(y, q6["act_min"], q6["act_max"]))


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (7, 3), (33, 10), (160, 17)])
def test_fully_connected_bit_exact(K8, rng, n_in, n_out):
    xz = rand_zero(rng)
    x, w = rand_codes(rng, n_in), rand_codes(rng, (n_out, n_in))
    b = rng.integers(-(1 << 16), 1 << 16, n_out)
    ws = np.array([rand_scale(rng, 1e-3, 1e-2) for _ in range(n_out)], np.float32)
    acc = w.astype(np.int64) @ (x.astype(np.int64) - xz) + b
    y_scale = 0.02 * float(np.std(acc * ws) + 1e-3) / 40
    q = Q.conv_quant(0.02, ws, y_scale, xz, 3)
    y = K8.fc(q, x, w, b)
    np.testing.assert_array_equal(y, fc_s8_ref(q, x, w, b))
    np.testing.assert_array_equal(K8.fc(q, x, w, None), fc_s8_ref(q, x, w, None))
    if n_out > 3:
        assert spread(y) > 0.5


# ---------------------------------------------------------------- elementwise


@pytest.mark.parametrize("n", [1, 7, 8, 33, 1000])
def test_add_bit_exact_two_scales(K8, rng, n):
    for _ in range(4):
        sa, sb = rand_scale(rng), rand_scale(rng)
        sy = (sa + sb) * rng.uniform(0.6, 1.5)
        za, zb, zy = rand_zero(rng), rand_zero(rng), int(rng.integers(-30, 31))
        act = Q.act_range(sy, zy, 0.0) if rng.random() < 0.3 else (-128, 127)
        q = Q.add_quant(sa, za, sb, zb, sy, zy, act)
        a, b = rand_codes(rng, n), rand_codes(rng, n)
        y = K8.add(q, a, b)
        np.testing.assert_array_equal(y, add_s8_ref(q, a, b))
        # within 1 LSB of the exact real sum, wherever not clamped
        exact = ((a.astype(np.float64) - za) * np.float64(np.float32(sa))
                 + (b.astype(np.float64) - zb) * np.float64(np.float32(sb))) / sy + zy
        inside = (exact > act[0] + 1) & (exact < act[1] - 1)
        assert np.all(np.abs(y[inside] - exact[inside]) <= 1.0)


def test_add_in_place(K8, rng):
    q = Q.add_quant(0.05, 3, 0.02, -7, 0.06, 1)
    a, b = rand_codes(rng, 50), rand_codes(rng, 50)
    want = add_s8_ref(q, a, b)
    qq = K8.ffi.new("mdy_s8_add_quant *", q)
    K8.lib.mdy_add_s8(a.size, qq, K8.i8(a), K8.i8(b), K8.i8(a))
    np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("hw,c", [(1, 1), (9, 5), (49, 16), (4, 33)])
def test_mul_channel_bit_exact(K8, rng, hw, c):
    for _ in range(3):
        xs, ss = rand_scale(rng), 1.0 / 256
        q = Q.mul_quant(xs, rand_zero(rng), ss, -128, xs * rng.uniform(0.5, 1.2),
                        int(rng.integers(-10, 11)))
        x, s = rand_codes(rng, (hw, c)), rand_codes(rng, c)
        y = K8.mul_channel(q, x, s)
        np.testing.assert_array_equal(y, mul_s8_ref(q, x, s[None, :]))


@pytest.mark.parametrize("n", [1, 8, 300])
def test_table_and_quantize_boundaries(K8, rng, n):
    table = rand_codes(rng, 256)
    x = rand_codes(rng, n)
    np.testing.assert_array_equal(K8.table(table, x), table[x.astype(np.int64) + 128])
    # quantize: the fp32 division and round half to even of ONNX QuantizeLinear
    scale, zero = np.float32(0.0371), -5
    xf = (rng.standard_normal(n) * 3).astype(np.float32)
    xf[: min(n, 4)] = np.float32([0.5, 1.5, -2.5, 1e9])[: min(n, 4)] * scale
    want = np.clip(np.rint(xf / scale) + zero, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(K8.quantize(xf, scale, zero), want)
    np.testing.assert_array_equal(K8.dequantize(x, scale, zero),
                                  (x.astype(np.float32) - np.float32(zero)) * scale)


def test_quantize_saturates_nan_and_infinities(K8):
    y = K8.quantize(np.float32([np.nan, np.inf, -np.inf, 1e30, -1e30]), np.float32(0.1), 0)
    np.testing.assert_array_equal(y, [-128, 127, -128, 127, -128])


# ---------------------------------------------------------------- pools and concat


@st.composite
def pool_shapes(draw):
    k_h, k_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    t, b = draw(st.integers(0, k_h - 1)), draw(st.integers(0, k_h - 1))
    l, r = draw(st.integers(0, k_w - 1)), draw(st.integers(0, k_w - 1))
    H = draw(st.integers(max(1, k_h - t - b), 9))
    W = draw(st.integers(max(1, k_w - l - r), 9))
    C = draw(st.integers(1, 7))
    return pool_params(H, W, C, k_h, k_w, (sh, sw), (t, l, b, r),
                       count_include_pad=draw(st.integers(0, 1)))


def rand_rescale(rng, identity=False):
    xs, xz = rand_scale(rng), rand_zero(rng)
    if identity:
        return Q.rescale_quant(xs, xz, xs, xz)
    return Q.rescale_quant(xs, xz, xs * rng.uniform(0.5, 2.0), int(rng.integers(-40, 41)))


@settings(max_examples=40, **HYP)
@given(P=pool_shapes(), seed=st.integers(0, 2 ** 16), identity=st.booleans())
def test_pools_random_shapes_bit_exact(K8, P, seed, identity):
    rng = np.random.default_rng(seed)
    q = rand_rescale(rng, identity)
    x = rand_codes(rng, (P["in_h"], P["in_w"], P["c"]))
    np.testing.assert_array_equal(K8.avgpool(P, q, x),
                                  avgpool_s8_ref(P, q, x, P["count_include_pad"]))
    np.testing.assert_array_equal(K8.maxpool(P, q, x), maxpool_s8_ref(P, q, x))


def round_half_even_mean(s, n):
    """Python's round(): ties to even, on exact fractions."""
    from fractions import Fraction
    return np.array([round(Fraction(int(v), int(n))) for v in np.ravel(s)]).reshape(np.shape(s))


def test_avgpool_identity_is_the_rounded_mean(K8, rng):
    """Same quantization in and out: the mean of the codes, ties to even (as
    TTE's torch.round and ONNX QuantizeLinear of the float mean)."""
    P = pool_params(6, 6, 5, 2, 2, (2, 2))
    q = Q.rescale_quant(0.1, 0, 0.1, 0)
    x = rand_codes(rng, (6, 6, 5))
    s = x.astype(np.int64).reshape(3, 2, 3, 2, 5).sum((1, 3))
    assert np.any(s % 4 == 2)            # ties are there
    np.testing.assert_array_equal(K8.avgpool(P, q, x), round_half_even_mean(s, 4))


@pytest.mark.parametrize("h,w,c", [(1, 1, 1), (7, 7, 13), (4, 4, 96), (16, 16, 3)])
def test_global_avgpool_bit_exact(K8, rng, h, w, c):
    for identity in (True, False):
        q = rand_rescale(rng, identity)
        x = rand_codes(rng, (h, w, c))
        y = K8.global_avgpool(q, x)
        np.testing.assert_array_equal(y, global_avgpool_s8_ref(q, x))
        if identity:   # the rounded mean of the codes, exactly
            s = x.astype(np.int64).reshape(-1, c).sum(0) - q["x_zero"] * h * w
            mean = round_half_even_mean(s, h * w)
            np.testing.assert_array_equal(y, np.clip(mean + q["x_zero"], -128, 127))


@pytest.mark.parametrize("hw,ca,cb", [(1, 1, 1), (9, 3, 5), (16, 8, 13)])
def test_concat_bit_exact(K8, rng, hw, ca, cb):
    for identity in (True, False):
        qa = rand_rescale(rng, identity)
        qb = rand_rescale(rng)
        if identity:
            qb = Q.rescale_quant(0.05, qa["y_zero"], 0.05, qa["y_zero"])
        a, b = rand_codes(rng, (hw, 1, ca)), rand_codes(rng, (hw, 1, cb))
        y = K8.concat(qa, qb, a, b)
        np.testing.assert_array_equal(y[..., :ca], rescale_s8_ref(qa, a))
        np.testing.assert_array_equal(y[..., ca:], rescale_s8_ref(qb, b))
        if identity:
            np.testing.assert_array_equal(y, np.concatenate([a, b], -1))
