"""Pooling kernels: global average, average (count_include_pad 0 and 1) and
max pool, against numpy and onnxruntime; gradients against numpy and finite
differences; the max-pool mask bit by bit, including overlapping windows."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from onnx import helper

from kernel_harness import f32, pool_params
from kernel_refs import (assert_rel, avgpool_igrad_ref, avgpool_ref, central_fd,
                         maxpool_igrad_ref, maxpool_mask_bits, maxpool_ref, nchw_to_nhwc,
                         nhwc_to_nchw, ort_run)

# (name, in_h, in_w, c, k_h, k_w, stride, pads (t, l, b, r))
POOLS = [
    ("2x2_s2", 6, 6, 3, 2, 2, (2, 2), (0, 0, 0, 0)),
    ("3x3_s21_asym", 7, 6, 2, 3, 3, (2, 1), (1, 0, 2, 1)),
    ("3x3_s2_overlap_pad", 7, 7, 2, 3, 3, (2, 2), (1, 1, 1, 1)),
    ("3x3_s1_overlap", 5, 5, 2, 3, 3, (1, 1), (0, 0, 0, 0)),
    ("2x3_s12", 5, 7, 3, 2, 3, (1, 2), (1, 1, 0, 2)),
    ("1x1_s21", 4, 4, 2, 1, 1, (2, 1), (0, 0, 0, 0)),
    ("5x5_1x1map_pad", 1, 1, 2, 5, 5, (1, 1), (2, 2, 2, 2)),
    ("7x7_global_window", 7, 7, 1, 7, 7, (1, 1), (0, 0, 0, 0)),
]
IDS = [p[0] for p in POOLS]


def make_pool(case, count_include_pad=0):
    _, H, W, C, KH, KW, stride, pads = case
    return pool_params(H, W, C, KH, KW, stride, pads, count_include_pad)


def distinct(rng, shape, gap=0.1):
    """Values at least `gap` apart: the maximum of every window is unique and
    a finite-difference step below gap/2 never changes which one it is."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap - n * gap / 2).astype(np.float32).reshape(shape)


# ---------------------------------------------------------------- global average pool


def gap(K, x):
    H, W, C = x.shape
    y = np.empty(C, np.float32)
    K.lib.mdy_global_avgpool_nhwc_f32(H, W, C, K.f(f32(x)), K.f(y))
    return y


@pytest.mark.parametrize("shape", [(1, 1, 3), (4, 5, 2), (7, 7, 8)])
def test_global_avgpool(K, rng, shape):
    H, W, C = shape
    x = rng.standard_normal(shape).astype(np.float32)
    y = gap(K, x)
    assert_rel(y, x.astype(np.float64).mean((0, 1)), 1e-6, "numpy")
    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    np.testing.assert_allclose(y, ort_run(node, [("x", nhwc_to_nchw(x))]).reshape(-1),
                               rtol=1e-5, atol=1e-6)
    r = rng.standard_normal(C).astype(np.float32)
    dx = np.full(shape, np.nan, np.float32)
    K.lib.mdy_global_avgpool_nhwc_f32_igrad(H, W, C, K.f(r), K.f(dx), 0)
    assert_rel(dx, np.broadcast_to(r.astype(np.float64) / (H * W), shape), 1e-6, "numpy")
    fd = central_fd(lambda xx: float(gap(K, xx).astype(np.float64) @ r), x, 0.5)
    assert_rel(dx, fd, 1e-3, "finite differences")
    acc = np.ones(shape, np.float32)
    K.lib.mdy_global_avgpool_nhwc_f32_igrad(H, W, C, K.f(r), K.f(acc), 1)
    np.testing.assert_allclose(acc, 1 + dx, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- average pool


def avgpool(K, P, x):
    y = np.empty((P["out_h"], P["out_w"], P["c"]), np.float32)
    K.lib.mdy_avgpool_nhwc_f32(K.pool_p(P), K.f(f32(x)), K.f(y))
    return y


def avgpool_igrad(K, P, dy, dx=None, accumulate=0):
    out = np.full((P["in_h"], P["in_w"], P["c"]), np.nan, np.float32) if dx is None else dx
    K.lib.mdy_avgpool_nhwc_f32_igrad(K.pool_p(P), K.f(f32(dy)), K.f(out), accumulate)
    return out


@pytest.mark.parametrize("cip", [0, 1])
@pytest.mark.parametrize("case", POOLS, ids=IDS)
def test_avgpool(K, rng, case, cip):
    P = make_pool(case, cip)
    x = rng.standard_normal((P["in_h"], P["in_w"], P["c"])).astype(np.float32)
    y = avgpool(K, P, x)
    assert_rel(y, avgpool_ref(P, x, cip), 1e-6, "numpy")
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[P["k_h"], P["k_w"]],
                            strides=[P["stride_h"], P["stride_w"]], pads=list(P["pads"]),
                            count_include_pad=cip)
    y_ort = nchw_to_nhwc(ort_run(node, [("x", nhwc_to_nchw(x))]))
    np.testing.assert_allclose(y, y_ort, rtol=1e-5, atol=1e-6)

    r = rng.standard_normal(y.shape).astype(np.float32)
    dx = avgpool_igrad(K, P, r)
    assert not np.isnan(dx).any()
    assert_rel(dx, avgpool_igrad_ref(P, r, cip), 1e-6, "numpy")
    fd = central_fd(lambda xx: float(np.sum(avgpool(K, P, xx).astype(np.float64) * r)), x, 0.5)
    assert_rel(dx, fd, 1e-3, "finite differences")
    acc = avgpool_igrad(K, P, r, np.ones_like(dx), 1)
    np.testing.assert_allclose(acc, 1 + dx, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- max pool


def maxpool(K, P, x, mask=None):
    y = np.empty((P["out_h"], P["out_w"], P["c"]), np.float32)
    K.lib.mdy_maxpool_nhwc_f32(K.pool_p(P), K.f(f32(x)), K.f(y), K.u8(mask))
    return y


def mask_for(K, P):
    nb = K.lib.mdy_maxpool_nhwc_f32_mask_bytes(K.pool_p(P))
    return np.full(nb + 4, 0xA5, np.uint8), nb  # garbage in, canary behind


@pytest.mark.parametrize("case", POOLS, ids=IDS)
def test_maxpool(K, rng, case):
    P = make_pool(case)
    shape = (P["in_h"], P["in_w"], P["c"])
    x = distinct(rng, shape)
    mask, nb = mask_for(K, P)
    y = maxpool(K, P, x, mask)
    y_ref, idx = maxpool_ref(P, x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(mask[:nb], maxpool_mask_bits(P, idx))
    assert (mask[nb:] == 0xA5).all(), "wrote past the mask"
    np.testing.assert_array_equal(maxpool(K, P, x, None), y)  # mask optional

    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[P["k_h"], P["k_w"]],
                            strides=[P["stride_h"], P["stride_w"]], pads=list(P["pads"]))
    np.testing.assert_array_equal(y, nchw_to_nhwc(ort_run(node, [("x", nhwc_to_nchw(x))])))

    r = rng.standard_normal(y.shape).astype(np.float32)
    dx = np.full(shape, np.nan, np.float32)
    K.lib.mdy_maxpool_nhwc_f32_igrad(K.pool_p(P), K.u8(mask), K.f(r), K.f(dx), 0)
    assert_rel(dx, maxpool_igrad_ref(P, idx, r), 1e-6, "numpy")
    fd = central_fd(lambda xx: float(np.sum(maxpool(K, P, xx).astype(np.float64) * r)), x, 0.02)
    assert_rel(dx, fd, 1e-3, "finite differences")
    acc = np.ones(shape, np.float32)
    K.lib.mdy_maxpool_nhwc_f32_igrad(K.pool_p(P), K.u8(mask), K.f(r), K.f(acc), 1)
    np.testing.assert_allclose(acc, 1 + dx, rtol=1e-6, atol=1e-6)


def test_maxpool_overlapping_windows_route_to_their_own_maximum(K):
    # 1-D windows of 2 with stride 1 over [0, 2, 1, 0] and [0, 1, 2, 0]: the
    # set of argmax positions is {1, 2} in both, yet the middle window's
    # maximum differs; the mask must tell them apart.
    P = pool_params(1, 4, 1, 1, 2, (1, 1))
    for row, expect in (([0, 2, 1, 0], [0, 2, 1, 0]), ([0, 1, 2, 0], [0, 1, 2, 0])):
        x = np.array(row, np.float32).reshape(1, 4, 1)
        mask, _ = mask_for(K, P)
        maxpool(K, P, x, mask)
        dx = np.full((1, 4, 1), np.nan, np.float32)
        K.lib.mdy_maxpool_nhwc_f32_igrad(K.pool_p(P), K.u8(mask),
                                         K.f(np.ones((1, 3, 1), np.float32)), K.f(dx), 0)
        np.testing.assert_array_equal(dx.reshape(-1), expect)


def test_maxpool_ties_go_to_the_first_maximum(K):
    P = pool_params(2, 2, 1, 2, 2, (2, 2))
    x = np.full((2, 2, 1), 3.0, np.float32)
    mask, nb = mask_for(K, P)
    maxpool(K, P, x, mask)
    assert nb == 1 and mask[0] == 0  # window position 0
    dx = np.empty((2, 2, 1), np.float32)
    K.lib.mdy_maxpool_nhwc_f32_igrad(K.pool_p(P), K.u8(mask),
                                     K.f(np.array([5.0], np.float32)), K.f(dx), 0)
    np.testing.assert_array_equal(dx.reshape(-1), [5, 0, 0, 0])


@pytest.mark.parametrize("k,bits", [((1, 1), 0), ((1, 2), 1), ((2, 2), 2), ((3, 3), 4),
                                    ((4, 4), 4), ((7, 7), 6)])
def test_maxpool_mask_bytes(K, k, bits):
    P = pool_params(8, 8, 3, k[0], k[1], (1, 1))
    n = P["out_h"] * P["out_w"] * 3
    assert K.lib.mdy_maxpool_nhwc_f32_mask_bytes(K.pool_p(P)) == (n * bits + 7) // 8


@st.composite
def pool_shapes(draw):
    k_h, k_w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    # ONNX requires pads smaller than the kernel
    t, b = draw(st.integers(0, k_h - 1)), draw(st.integers(0, k_h - 1))
    l, r = draw(st.integers(0, k_w - 1)), draw(st.integers(0, k_w - 1))
    H = draw(st.integers(max(1, k_h - t - b), 8))
    W = draw(st.integers(max(1, k_w - l - r), 8))
    return pool_params(H, W, draw(st.integers(1, 3)), k_h, k_w,
                       (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (t, l, b, r),
                       draw(st.integers(0, 1)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(P=pool_shapes(), seed=st.integers(0, 2 ** 16))
def test_pool_random_shapes(K, P, seed):
    rng = np.random.default_rng(seed)
    shape = (P["in_h"], P["in_w"], P["c"])
    x = distinct(rng, shape)
    r = rng.standard_normal((P["out_h"], P["out_w"], P["c"])).astype(np.float32)
    cip = P["count_include_pad"]
    assert_rel(avgpool(K, P, x), avgpool_ref(P, x, cip), 1e-6, "avgpool")
    assert_rel(avgpool_igrad(K, P, r), avgpool_igrad_ref(P, r, cip), 1e-6, "avgpool igrad")
    mask, nb = mask_for(K, P)
    y_ref, idx = maxpool_ref(P, x)
    np.testing.assert_array_equal(maxpool(K, P, x, mask), y_ref)
    np.testing.assert_array_equal(mask[:nb], maxpool_mask_bits(P, idx))
    dx = np.full(shape, np.nan, np.float32)
    K.lib.mdy_maxpool_nhwc_f32_igrad(K.pool_p(P), K.u8(mask), K.f(r), K.f(dx), 0)
    assert_rel(dx, maxpool_igrad_ref(P, idx, r), 1e-6, "maxpool igrad")
