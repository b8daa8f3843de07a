"""Training on the int8 graph, kernel by kernel (docs/ALGORITHM.md): fp32
weight gradients from int8 saved maps, fp32 input gradients through frozen
int8 layers, the clamp's 1-bit straight-through mask from int8 codes, the int8
max pool's window-index mask, the hard-swish and channel-multiply gradients
from saved int8 operands, and SGD with QAS and stochastic rounding on int8
slices. Against float64 numpy on the dequantized tensors, the kernels that
dequantize a saved tensor also bit for bit against their fp32 twins on it, and
the SGD bit for bit against a numpy emulation of its fp32 steps."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from int8_harness import Kernels8, rand_codes, rand_scale, rand_zero
from int8_refs import conv_s8_ref, maxpool_s8_ref
from kernel_harness import conv_params, f32, pool_params
from kernel_refs import (assert_rel, conv_igrad_ref, conv_wgrad_full_ref, maxpool_igrad_ref,
                         maxpool_mask_bits, maxpool_ref, slices_of)
from medyate.planner import quant as Q

HYP = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def K8(K):
    return Kernels8(K)


@st.composite
def conv_shapes(draw):
    dw = draw(st.booleans())
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 2))
    t, b = draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))
    H = draw(st.integers(max(1, k - t - b), 8))
    W = draw(st.integers(max(1, k - t - b), 8))
    C = draw(st.integers(1, 7))
    O = C * draw(st.integers(1, 2)) if dw else draw(st.integers(1, 7))
    return conv_params(H, W, C, O, k, k, (s, s), (t, t, b, b), depthwise=dw)


@settings(max_examples=30, **HYP)
@given(P=conv_shapes(), seed=st.integers(0, 2 ** 16))
def test_wgrad_from_int8_maps_and_igrad_through_int8_weights(K8, P, seed):
    rng = np.random.default_rng(seed)
    dw = P["groups"] != 1
    C, O = P["in_c"], P["out_c"]
    xz, xs = rand_zero(rng), rand_scale(rng)
    x = rand_codes(rng, (P["in_h"], P["in_w"], C))
    x_real = xs * (x.astype(np.float64) - xz)
    dy = rng.standard_normal((P["out_h"], P["out_w"], O)).astype(np.float32)
    # sparse, unsorted-free selection with one channel the layer does not have
    sel = np.sort(rng.choice(C, size=int(rng.integers(1, C + 1)), replace=False))
    maps = np.ascontiguousarray(x.transpose(2, 0, 1)[sel])
    init = rng.standard_normal(slices_of(P, np.zeros((O, P["k_h"], P["k_w"], 1 if dw else C)),
                                         sel).shape).astype(np.float32)
    ref = slices_of(P, conv_wgrad_full_ref(P, x_real, dy), sel)
    g0 = K8.conv_wgrad(P, maps, xz, xs, sel, dy, np.zeros_like(init))
    assert_rel(g0, ref, 1e-5, "wgrad from int8 maps")
    # accumulation adds the same gradient once (one fused rounding), elementwise
    # (a relative norm of the sum is ill-posed where init and gradient cancel)
    g = K8.conv_wgrad(P, maps, xz, xs, sel, dy, init)
    bound = 2.0 ** -22 * (np.abs(init) + np.abs(g0).astype(np.float64))
    assert np.all(np.abs(g - (init.astype(np.float64) + g0)) <= bound)
    # input gradient through the frozen int8 weights, W = scale[o] * code
    w = rand_codes(rng, (O, P["k_h"], P["k_w"], 1 if dw else C))
    ws = np.array([rand_scale(rng, 1e-3, 2e-2) for _ in range(O)], np.float32)
    w_real = w.astype(np.float64) * ws[:, None, None, None]
    assert_rel(K8.conv_igrad(P, w, ws, dy), conv_igrad_ref(P, w_real, dy), 1e-5, "igrad")
    dx0 = rng.standard_normal((P["in_h"], P["in_w"], C)).astype(np.float32)
    # accumulate, elementwise against fp32 rounding of every term (not a norm of the
    # sum, which is ill-posed where dx0 and the gradient cancel)
    err = np.abs(K8.conv_igrad(P, w, ws, dy, dx0, 1) - (dx0 + conv_igrad_ref(P, w_real, dy)))
    terms = np.abs(dx0) + conv_igrad_ref(P, np.abs(w_real), np.abs(dy))
    assert np.all(err <= 1e-5 * terms), "igrad accumulate"


def test_wgrad_from_int8_maps_equals_fp32_kernel_on_dequantized_maps(K, K8, rng):
    """The int8 path's gradient is the fp32 path's on the same real values."""
    P = conv_params(9, 9, 6, 8, 3, 3, (1, 1), (1, 1, 1, 1))
    xz, xs = -128, 0.02
    x = rand_codes(rng, (9, 9, 6))
    sel = np.array([0, 2, 5])
    maps8 = np.ascontiguousarray(x.transpose(2, 0, 1)[sel])
    maps32 = (xs * (maps8.astype(np.float32) - xz)).astype(np.float32)
    dy = rng.standard_normal((9, 9, 8)).astype(np.float32)
    zero = np.zeros((3, 8, 3, 3), np.float32)
    g8 = K8.conv_wgrad(P, maps8, xz, xs, sel, dy, zero)
    g32 = K.conv_wgrad(P, maps32, sel, dy, zero)
    assert_rel(g8, g32, 1e-6)


def test_wgrad_out_of_range_channel_is_left_alone(K8, rng):
    for dw in (False, True):
        P = conv_params(5, 5, 3, 6 if dw else 4, 3, 3, (1, 1), (1, 1, 1, 1), depthwise=dw)
        m = 2 if dw else 4
        init = np.full((2, m, 3, 3), 7.0, np.float32)
        g = K8.conv_wgrad(P, rand_codes(rng, (2, 5, 5)), 0, 0.1, [1, 3],
                          rng.standard_normal((5, 5, P["out_c"])), init)
        assert (g[1] == 7.0).all() and not (g[0] == 7.0).all()


def test_fully_connected_training_kernels(K8, rng):
    n_in, n_out = 37, 11
    xz, xs = 5, 0.03
    x = rand_codes(rng, n_in)
    sel = np.array([0, 3, 4, 36])
    dy = rng.standard_normal(n_out).astype(np.float32)
    init = rng.standard_normal((4, n_out)).astype(np.float32)
    g = K8.fc_wgrad(n_in, n_out, x[sel], xz, xs, sel, dy, init)
    assert_rel(g, init + np.outer(xs * (x[sel].astype(np.float64) - xz), dy), 1e-6)
    w = rand_codes(rng, (n_out, n_in))
    ws = np.array([rand_scale(rng, 1e-3, 1e-2) for _ in range(n_out)], np.float32)
    want = (w.astype(np.float64) * ws[:, None]).T @ dy
    assert_rel(K8.fc_igrad(w, ws, dy), want, 1e-6)
    dx0 = rng.standard_normal(n_in).astype(np.float32)
    assert_rel(K8.fc_igrad(w, ws, dy, dx0, 1), dx0 + want, 1e-6)


# ---------------------------------------------------------------- the clamp's mask


@pytest.mark.parametrize("n", [1, 7, 8, 9, 100])
def test_clamp_mask_from_codes(K8, rng, n):
    y = rand_codes(rng, n)
    y[: min(n, 2)] = [-10, 110][: min(n, 2)]          # the bounds themselves: clamped
    mask = K8.clamp_mask(y, -10, 110)
    nb = (n + 7) // 8
    want = np.packbits(((y > -10) & (y < 110)).astype(np.uint8), bitorder="little")
    np.testing.assert_array_equal(mask[:nb], want)
    assert (mask[nb:] == 0xA5).all(), "wrote past the mask"


def test_straight_through_clamp_of_an_int8_conv(K, K8, rng):
    """Forward an int8 conv with ReLU6 fused, mask from its output codes, then
    the fp32 clamp backward: dy passes exactly where the output was not clamped."""
    P = conv_params(6, 6, 4, 5, 3, 3, (1, 1), (1, 1, 1, 1))
    x, w = rand_codes(rng, (6, 6, 4)), rand_codes(rng, (5, 3, 3, 4))
    q = Q.conv_quant(0.02, np.full(5, 0.01, np.float32), 0.05, 0, -20,
                     Q.act_range(0.05, -20, 0.0, 6.0))
    y = K8.conv(P, q, x, w)
    np.testing.assert_array_equal(y, conv_s8_ref(P, q, x, w))
    assert (y == q["act_min"]).any() and (y > q["act_min"]).any()
    mask = K8.clamp_mask(y, q["act_min"], q["act_max"])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = np.full_like(dy, np.nan)
    K.lib.mdy_clamp_f32_igrad(dy.size, K.u8(mask), K.f(dy), K.f(dx), 0)
    inside = (y > q["act_min"]) & (y < q["act_max"])
    np.testing.assert_array_equal(dx, np.where(inside, dy, 0.0).astype(np.float32))


# ---------------------------------------------------------------- max pool mask


def dequant(x, scale, zero):
    """The runtime's dequantization, (float)(code - zero) * scale in fp32."""
    return (np.asarray(x, np.int32) - zero).astype(np.float32) * np.float32(scale)


@st.composite
def pool_shapes(draw):
    k_h, k_w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    t, b = draw(st.integers(0, k_h - 1)), draw(st.integers(0, k_h - 1))
    l, r = draw(st.integers(0, k_w - 1)), draw(st.integers(0, k_w - 1))
    H = draw(st.integers(max(1, k_h - t - b), 9))
    W = draw(st.integers(max(1, k_w - l - r), 9))
    return pool_params(H, W, draw(st.integers(1, 7)), k_h, k_w, (sh, sw), (t, l, b, r))


@settings(max_examples=40, **HYP)
@given(P=pool_shapes(), seed=st.integers(0, 2 ** 16), spread=st.sampled_from([3, 256]))
def test_maxpool_s8_mask_is_the_fp32_mask_and_routes_the_gradient(K, K8, P, seed, spread):
    """The int8 max pool's mask, bit for bit: numpy's first maximum of the codes,
    and the fp32 max pool's mask on the dequantized input (ties included: a
    spread of 3 codes makes most windows tie); the gradient routed through it by
    mdy_maxpool_nhwc_f32_igrad is numpy's."""
    rng = np.random.default_rng(seed)
    xs, xz = rand_scale(rng), rand_zero(rng)
    q = Q.rescale_quant(xs, xz, xs * rng.uniform(0.5, 2.0), int(rng.integers(-40, 41)))
    lo = int(rng.integers(-128, 128 - spread + 1))
    x = rng.integers(lo, lo + spread, (P["in_h"], P["in_w"], P["c"])).astype(np.int8)
    y, mask = K8.maxpool(P, q, x, with_mask=True)
    np.testing.assert_array_equal(y, maxpool_s8_ref(P, q, x))
    nb = K.lib.mdy_maxpool_nhwc_f32_mask_bytes(K.pool_p(P))
    assert (mask[nb:] == 0xA5).all(), "wrote past the mask"
    _, idx = maxpool_ref(P, x)
    np.testing.assert_array_equal(mask[:nb], maxpool_mask_bits(P, idx))
    xr = dequant(x, xs, xz)
    y32 = np.empty((P["out_h"], P["out_w"], P["c"]), np.float32)
    m32 = np.full(nb + 4, 0x5A, np.uint8)
    K.lib.mdy_maxpool_nhwc_f32(K.pool_p(P), K.f(xr), K.f(y32), K.u8(m32))
    np.testing.assert_array_equal(mask[:nb], m32[:nb])
    # the gradient, fresh and accumulated
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = np.full(x.shape, np.nan, np.float32)
    K.lib.mdy_maxpool_nhwc_f32_igrad(K.pool_p(P), K.u8(mask), K.f(dy), K.f(dx), 0)
    want = maxpool_igrad_ref(P, idx, dy)
    assert_rel(dx, want, 1e-6, "routed gradient")
    assert (dx[want == 0] == 0).all() and (dx[want != 0] != 0).all()
    dx0 = rng.standard_normal(x.shape).astype(np.float32)
    acc = dx0.copy()
    K.lib.mdy_maxpool_nhwc_f32_igrad(K.pool_p(P), K.u8(mask), K.f(dy), K.f(acc), 1)
    bound = 2.0 ** -21 * (np.abs(dx0) + maxpool_igrad_ref(P, idx, np.abs(dy)))
    assert np.all(np.abs(acc - (dx0 + want)) <= bound), "routed gradient, accumulated"


def test_maxpool_s8_ties_overlaps_and_one_tap_windows(K, K8):
    """Ties go to the first maximum of the input codes in (kh, kw) order, not of
    the rescaled output (which may merge codes); overlapping windows keep their
    own maximum; a 1x1 window stores nothing."""
    q = Q.rescale_quant(0.05, 0, 1.0, 0)     # 20x smaller: codes 0..9 all give 0
    P = pool_params(2, 2, 1, 2, 2)
    x = np.array([[4, 5], [5, 2]], np.int8).reshape(2, 2, 1)
    y, mask = K8.maxpool(P, q, x, with_mask=True)
    assert y.item() == 0 and mask[0] == 1    # window position 1: the first 5
    P = pool_params(1, 4, 1, 1, 3)           # windows [a b c] and [b c d]
    x = np.array([1, 9, 2, 9], np.int8).reshape(1, 4, 1)
    _, mask = K8.maxpool(P, Q.rescale_quant(1.0, 0, 1.0, 0), x, with_mask=True)
    dx = np.full(x.shape, np.nan, np.float32)
    K.lib.mdy_maxpool_nhwc_f32_igrad(K.pool_p(P), K.u8(mask),
                                     K.f(np.float32([[[1.0]], [[2.0]]]).reshape(1, 2, 1)),
                                     K.f(dx), 0)
    np.testing.assert_array_equal(dx.reshape(-1), [0, 3, 0, 0])
    P = pool_params(3, 3, 2, 1, 1)
    assert K.lib.mdy_maxpool_nhwc_f32_mask_bytes(K.pool_p(P)) == 0
    x = np.arange(18, dtype=np.int8).reshape(3, 3, 2)
    y, mask = K8.maxpool(P, Q.rescale_quant(0.5, 3, 0.5, 3), x, with_mask=True)
    np.testing.assert_array_equal(y, x)
    assert (mask == 0xA5).all(), "a 1x1 window wrote a mask"


# ---------------------------------------------------------------- hard-swish, channel multiply


@settings(max_examples=30, **HYP)
@given(n=st.integers(1, 300), seed=st.integers(0, 2 ** 16), accumulate=st.integers(0, 1))
def test_hardswish_s8_igrad(K, K8, n, seed, accumulate):
    """Numpy's derivative at the dequantized input, and the fp32 kernel on the
    dequantized input bit for bit. Scales so that the int8 range covers the
    kinks at +-3 and both flat parts; every code appears when n >= 256."""
    rng = np.random.default_rng(seed)
    xs, xz = rand_scale(rng, 0.02, 0.2), rand_zero(rng)
    x = (np.arange(n) % 256 - 128).astype(np.int8)
    rng.shuffle(x)
    dy = rng.standard_normal(n).astype(np.float32)
    dx0 = rng.standard_normal(n).astype(np.float32) if accumulate else None
    got = K8.hardswish_igrad(x, xs, xz, dy, dx0, accumulate)
    v = dequant(x, xs, xz).astype(np.float64)
    d = np.where(v < -3, 0.0, np.where(v <= 3, v / 3 + 0.5, 1.0))
    want = d * dy + (dx0 if accumulate else 0.0)
    # fp32 roundings of v/3, + 1/2, * dy (and + dx0): v/3 + 1/2 cancels near
    # v = -3/2, so the error is relative to |v|/3, not to the derivative
    slope = np.where((v >= -3) & (v <= 3), np.abs(v) / 3, 0.0)
    terms = (slope + np.abs(d)) * np.abs(dy) + (np.abs(dx0) if accumulate else 0.0)
    assert np.all(np.abs(got - want) <= 2.0 ** -21 * terms), "numpy"
    xr = dequant(x, xs, xz)
    twin = np.full(n, np.nan, np.float32) if dx0 is None else dx0.copy()
    K.lib.mdy_hardswish_f32_igrad(n, K.f(xr), K.f(dy), K.f(twin), accumulate)
    np.testing.assert_array_equal(got.view(np.uint32), twin.view(np.uint32))
    inplace = dy.copy()                       # dx aliasing dy
    K.lib.mdy_hardswish_s8_igrad(n, K8.i8(x), xs, xz, K.f(inplace), K.f(inplace), 0)
    np.testing.assert_array_equal(inplace, K8.hardswish_igrad(x, xs, xz, dy))


@settings(max_examples=30, **HYP)
@given(hw=st.integers(1, 70), c=st.integers(1, 17), seed=st.integers(0, 2 ** 16),
       accumulate=st.integers(0, 1))
def test_mul_channel_s8_igrads(K, K8, hw, c, seed, accumulate):
    """dx = dy * s_real and ds = sum_hw dy * x_real from the saved int8 x and s:
    numpy in float64 on the dequantized operands, and the fp32 kernels on them
    bit for bit."""
    rng = np.random.default_rng(seed)
    xs, xz = rand_scale(rng), rand_zero(rng)
    ss, sz = rand_scale(rng, 1 / 256, 1 / 64), rand_zero(rng)
    x, s = rand_codes(rng, (hw, c)), rand_codes(rng, c)
    dy = rng.standard_normal((hw, c)).astype(np.float32)
    xr, sr = dequant(x, xs, xz), dequant(s, ss, sz)
    dx0 = rng.standard_normal((hw, c)).astype(np.float32) if accumulate else None
    ds0 = rng.standard_normal(c).astype(np.float32) if accumulate else None

    dx = K8.mul_channel_igrad_x(s, ss, sz, dy, dx0, accumulate)
    want = dy.astype(np.float64) * sr + (dx0 if accumulate else 0.0)
    terms = np.abs(dy.astype(np.float64) * sr) + (np.abs(dx0) if accumulate else 0.0)
    assert np.all(np.abs(dx - want) <= 2.0 ** -23 * terms), "dx, numpy"
    twin = np.full((hw, c), np.nan, np.float32) if dx0 is None else dx0.copy()
    K.lib.mdy_mul_channel_nhwc_f32_igrad_x(hw, c, K.f(sr), K.f(dy), K.f(twin), accumulate)
    np.testing.assert_array_equal(dx.view(np.uint32), twin.view(np.uint32))
    inplace = dy.copy()                       # dx aliasing dy
    K.lib.mdy_mul_channel_nhwc_s8_igrad_x(hw, c, K8.i8(s), ss, sz, K.f(inplace),
                                          K.f(inplace), 0)
    np.testing.assert_array_equal(inplace, K8.mul_channel_igrad_x(s, ss, sz, dy))

    ds = K8.mul_channel_igrad_s(x, xs, xz, dy, ds0, accumulate)
    prod = dy.astype(np.float64) * xr
    want = prod.sum(0) + (ds0 if accumulate else 0.0)
    # hw fused roundings of the running sum, one more for the accumulation
    terms = np.abs(prod).sum(0) + (np.abs(ds0) if accumulate else 0.0)
    assert np.all(np.abs(ds - want) <= (hw + 1) * 2.0 ** -23 * terms), "ds, numpy"
    twin = np.full(c, np.nan, np.float32) if ds0 is None else ds0.copy()
    K.lib.mdy_mul_channel_nhwc_f32_igrad_s(hw, c, K.f(xr), K.f(dy), K.f(twin), accumulate)
    np.testing.assert_array_equal(ds.view(np.uint32), twin.view(np.uint32))


def test_dequant_rule_is_the_dequantize_kernel(K8, rng):
    """The tests' dequant() is the C boundary kernel's, bit for bit."""
    x = np.arange(-128, 128).astype(np.int8)
    for scale, zero in [(0.0371, -128), (rand_scale(rng), 127), (rand_scale(rng), 5)]:
        np.testing.assert_array_equal(K8.dequantize(x, np.float32(scale), zero).view(np.uint32),
                                      dequant(x, scale, zero).view(np.uint32))


# ---------------------------------------------------------------- SGD with QAS


def sgd_s8_numpy(groups, group, w_flat, stride, scales, g, lr, seed):
    """The kernel's fp32 steps, one by one: xorshift32, u = (s >> 8) / 2^24,
    floor(code - (lr / scale) * g + u), clamp to [-127, 127]."""
    w = w_flat.copy()
    s = seed or 0x9E3779B9
    for r in range(groups):
        step = np.float32(lr) / np.float32(scales[r])
        for j in range(group):
            i = r * group + j
            s ^= (s << 13) & 0xFFFFFFFF
            s ^= s >> 17
            s ^= (s << 5) & 0xFFFFFFFF
            u = np.float32(s >> 8) * np.float32(1.0 / 16777216.0)
            v = np.float32(w[i * stride]) - np.float32(step * np.float32(g[i]))
            v = np.floor(np.float32(v + u))
            w[i * stride] = int(min(127, max(-127, v)))
    return w, s


def test_sgd_slice_s8_bit_exact_and_zeroes_the_gradient(K8, rng):
    O, KH, KW, C = 6, 3, 3, 5
    w = rand_codes(rng, (O, KH, KW, C))
    w[0, 0, 0, 2], w[1, 0, 0, 2] = 127, -127            # clamped steps at both ends
    ws = np.array([rand_scale(rng, 1e-3, 1e-2) for _ in range(O)], np.float32)
    c = 2
    g = (rng.standard_normal(O * KH * KW) * 0.5).astype(np.float32)
    g[0], g[KH * KW] = -100.0, 100.0
    want, s_want = sgd_s8_numpy(O, KH * KW, w.reshape(-1)[c:], C, ws, g, 0.01, 12345)
    wk = w.copy()
    flat = wk.reshape(-1)
    view = flat[c:]                                     # the slice W[:, :, :, c]
    n2, g_after, s_after = K8.sgd_slice(O, KH * KW, view, C, ws, g, 0.01, 12345)
    np.testing.assert_array_equal(flat[c:], want)
    others = np.ones(flat.size, bool)
    others[c::C] = False
    np.testing.assert_array_equal(flat[others], w.reshape(-1)[others])   # other channels
    assert s_after == s_want and (g_after == 0).all()
    assert abs(n2 - float(np.sum(g.astype(np.float64) ** 2))) <= 1e-5 * n2
    assert wk[0, 0, 0, 2] == 127 and wk[1, 0, 0, 2] == -127


def test_sgd_slice_s8_is_qas_in_expectation(K8):
    """A step of a quarter code, repeated: the stochastic rounding moves the
    codes by lr * g / scale on average, i.e. the real weight by lr * g, the
    float model's step (QAS restores the gradient/weight ratio)."""
    n, reps, scale, lr = 64, 200, 0.004, 0.1
    g = np.full(n, 0.01, np.float32)                    # lr * g / scale = 0.25 code
    w = np.zeros(n, np.int8)
    seed = 99
    for _ in range(reps):
        _, _, seed = K8.sgd_slice(n, 1, w, 1, np.full(n, scale, np.float32), g, lr, seed)
    moved = -w.astype(np.float64).mean() / reps       # codes per step
    assert abs(moved - 0.25) < 0.01, moved
    assert abs(moved * scale - lr * 0.01) < 0.04 * lr * 0.01


def test_sgd_bias_s32_qas_stochastic_and_saturating(K8, rng):
    n = 40
    b = rng.integers(-5000, 5000, n).astype(np.int32)
    b[0], b[1] = 2 ** 31 - 3, -(2 ** 31) + 3
    scales = (np.float32(0.02) * np.array([rand_scale(rng, 1e-3, 1e-2) for _ in range(n)],
                                          np.float32)).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    g[0], g[1] = -1e3, 1e3                               # steps far past int32: saturate
    lr = 1e-3
    n2, b_new, g_new, s_new = K8.sgd_bias(b, scales, g, lr, 7)
    # numpy emulation of the fp32 steps
    s, want = 7, b.astype(np.int64).copy()
    for o in range(n):
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        u = np.float32(s >> 8) * np.float32(1.0 / 16777216.0)
        d = np.floor(np.float32(u - np.float32(np.float32(lr) / scales[o]) * g[o]))
        want[o] = np.clip(want[o] + int(np.clip(d, -2 ** 30, 2 ** 30)), -2 ** 31, 2 ** 31 - 1)
    np.testing.assert_array_equal(b_new, want)
    assert b_new[0] == 2 ** 31 - 1 and b_new[1] == -(2 ** 31)
    assert s_new == s and (g_new == 0).all()
    assert abs(n2 - float(np.sum(g.astype(np.float64) ** 2))) <= 1e-5 * n2
    # the real bias moved by about -lr * g (within one code of scale s_x s_w)
    moved = (b_new[2:].astype(np.float64) - b[2:]) * scales[2:]
    assert np.all(np.abs(moved + lr * g[2:]) <= scales[2:] * 1.0001)
