"""Conv 2D (dense, pointwise, depthwise) and fully connected kernels: forward
against numpy and onnxruntime, input and sparse weight gradients against numpy
and finite differences of the forward kernel."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kernel_harness import conv_params, f32
from kernel_refs import (assert_rel, central_fd, conv_igrad_ref, conv_ref, conv_wgrad_full_ref,
                         nchw_to_nhwc, nhwc_to_nchw, ort_run, slices_of)

# (name, in_h, in_w, in_c, out_c, k_h, k_w, stride (h, w), pads (t, l, b, r), depthwise)
CASES = [
    ("dense3x3_s21_asym", 7, 6, 3, 4, 3, 3, (2, 1), (1, 0, 2, 1), False),
    ("dense1x1_pointwise_s21", 5, 5, 3, 2, 1, 1, (2, 1), (0, 0, 0, 0), False),
    ("dense1x1_pointwise", 4, 6, 5, 4, 1, 1, (1, 1), (0, 0, 0, 0), False),
    ("dense2x4_s12", 8, 8, 2, 3, 2, 4, (1, 2), (0, 1, 1, 2), False),
    ("dense5x5_s12_asym", 9, 8, 2, 3, 5, 5, (1, 2), (2, 2, 1, 0), False),
    ("dense6x6_fullmap", 6, 6, 2, 2, 6, 6, (1, 1), (0, 0, 0, 0), False),
    ("dense7x7_s21_pad", 10, 9, 2, 2, 7, 7, (2, 1), (3, 1, 3, 2), False),
    ("dense5x5_larger_than_map", 3, 3, 2, 3, 5, 5, (1, 1), (2, 2, 2, 2), False),
    ("dense3x3_s21_unused_rows", 6, 5, 2, 2, 3, 3, (2, 1), (0, 0, 0, 0), False),
    ("dw3x3_s21_asym", 7, 7, 3, 3, 3, 3, (2, 1), (1, 1, 1, 0), True),
    ("dw_m2_5x3_s21", 8, 6, 2, 4, 5, 3, (2, 1), (2, 1, 0, 1), True),
    ("dw_m2_7x7_s12", 9, 9, 3, 6, 7, 7, (1, 2), (3, 3, 3, 3), True),
    ("dw1x1_s21", 6, 6, 4, 4, 1, 1, (2, 1), (0, 0, 0, 0), True),
    ("dw_m3_4x2", 5, 4, 2, 6, 4, 2, (1, 1), (0, 0, 1, 1), True),
    ("dw3x3_1x1map_pad", 1, 1, 2, 2, 3, 3, (1, 1), (1, 1, 1, 1), True),
]
IDS = [c[0] for c in CASES]


def make_case(case, rng):
    _, H, W, C, O, KH, KW, stride, pads, dw = case
    P = conv_params(H, W, C, O, KH, KW, stride, pads, depthwise=dw)
    x = rng.standard_normal((H, W, C)).astype(np.float32)
    w = (rng.standard_normal((O, KH, KW, 1 if dw else C)) / np.sqrt(KH * KW)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    return P, x, w, b


# ---------------------------------------------------------------- forward


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv_forward_numpy_and_onnxruntime(K, rng, case):
    from onnx import helper
    P, x, w, b = make_case(case, rng)
    y = K.conv(P, x, w, b)
    assert_rel(y, conv_ref(P, x, w, b), 1e-5, "numpy")

    dw = P["groups"] != 1
    w_oihw = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW ([O][1][KH][KW] depthwise)
    t, l, bo, r = P["pads"]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"],
                            kernel_shape=[P["k_h"], P["k_w"]],
                            strides=[P["stride_h"], P["stride_w"]], pads=[t, l, bo, r],
                            group=P["in_c"] if dw else 1)
    y_ort = nchw_to_nhwc(ort_run(node, [("x", nhwc_to_nchw(x))],
                                 [("w", np.ascontiguousarray(w_oihw)), ("b", b)]))
    assert y_ort.shape == y.shape
    np.testing.assert_allclose(y, y_ort, rtol=1e-4, atol=1e-5)


def test_conv_forward_without_bias(K, rng):
    P, x, w, _ = make_case(CASES[0], rng)
    assert_rel(K.conv(P, x, w, None), conv_ref(P, x, w), 1e-5)
    P, x, w, _ = make_case(CASES[10], rng)
    assert_rel(K.conv(P, x, w, None), conv_ref(P, x, w), 1e-5)


@st.composite
def conv_shapes(draw):
    dw = draw(st.booleans())
    k_h, k_w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    t, b = draw(st.integers(0, k_h - 1)), draw(st.integers(0, k_h - 1))
    l, r = draw(st.integers(0, k_w - 1)), draw(st.integers(0, k_w - 1))
    H = draw(st.integers(max(1, k_h - t - b), 9))
    W = draw(st.integers(max(1, k_w - l - r), 9))
    C = draw(st.integers(1, 4))
    O = C * draw(st.integers(1, 3)) if dw else draw(st.integers(1, 4))
    return conv_params(H, W, C, O, k_h, k_w, (sh, sw), (t, l, b, r), depthwise=dw)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(P=conv_shapes(), seed=st.integers(0, 2 ** 16))
def test_conv_random_shapes_forward_and_gradients(K, P, seed):
    rng = np.random.default_rng(seed)
    dw = P["groups"] != 1
    C, O = P["in_c"], P["out_c"]
    x = rng.standard_normal((P["in_h"], P["in_w"], C)).astype(np.float32)
    w = rng.standard_normal((O, P["k_h"], P["k_w"], 1 if dw else C)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    dy = rng.standard_normal((P["out_h"], P["out_w"], O)).astype(np.float32)
    assert_rel(K.conv(P, x, w, b), conv_ref(P, x, w, b), 1e-5, "forward")
    assert_rel(K.conv_igrad(P, w, dy), conv_igrad_ref(P, w, dy), 1e-5, "igrad")
    sel = np.arange(C)
    maps = np.ascontiguousarray(x.transpose(2, 0, 1))
    g = K.conv_wgrad(P, maps, sel, dy, np.zeros_like(slices_of(P, w.astype(np.float64), sel)))
    assert_rel(g, slices_of(P, conv_wgrad_full_ref(P, x, dy), sel), 1e-5, "wgrad")


# ---------------------------------------------------------------- input gradient


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv_igrad_numpy_fd_and_accumulate(K, rng, case):
    P, x, w, b = make_case(case, rng)
    r = rng.standard_normal((P["out_h"], P["out_w"], P["out_c"])).astype(np.float32)
    dx = K.conv_igrad(P, w, r)
    assert not np.isnan(dx).any()  # accumulate=0 overwrites every element
    assert_rel(dx, conv_igrad_ref(P, w, r), 1e-5, "numpy")

    # L(x) = sum(r * conv(x)) is linear in x: a large step is exact
    def loss(xx):
        return float(np.sum(K.conv(P, xx, w, b).astype(np.float64) * r))
    assert_rel(dx, central_fd(loss, x, 0.5), 1e-3, "finite differences")

    prev = rng.standard_normal(dx.shape).astype(np.float32)
    acc = K.conv_igrad(P, w, r, dx=prev, accumulate=1)
    np.testing.assert_allclose(acc, prev + dx, rtol=1e-5, atol=1e-5)
    over = K.conv_igrad(P, w, r, dx=prev, accumulate=0)
    np.testing.assert_array_equal(over, dx)


# ---------------------------------------------------------------- weight gradient


def selections(C, rng):
    """One channel, all channels, and a random strictly increasing subset."""
    out = [np.array([rng.integers(C)]), np.arange(C)]
    k = int(rng.integers(1, C + 1))
    out.append(np.sort(rng.choice(C, size=k, replace=False)))
    return out


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv_wgrad_sparse_is_full_restricted(K, rng, case):
    P, x, w, b = make_case(case, rng)
    C = P["in_c"]
    dy = rng.standard_normal((P["out_h"], P["out_w"], P["out_c"])).astype(np.float32)
    maps = np.ascontiguousarray(x.transpose(2, 0, 1))  # channel-planar saved maps
    full_ref = conv_wgrad_full_ref(P, x, dy)
    all_sel = np.arange(C)
    zeros_all = np.zeros(slices_of(P, full_ref, all_sel).shape, np.float32)
    full_c = K.conv_wgrad(P, maps, all_sel, dy, zeros_all)
    assert_rel(full_c, slices_of(P, full_ref, all_sel), 1e-5, "numpy")

    for sel in selections(C, rng):
        zeros = np.zeros((len(sel),) + zeros_all.shape[1:], np.float32)
        g = K.conv_wgrad(P, maps[sel], sel, dy, zeros)
        # same arithmetic per channel: bit-identical to the full gradient's slices
        np.testing.assert_array_equal(g, full_c[sel])
        # it accumulates into what is there
        prev = rng.standard_normal(zeros.shape).astype(np.float32)
        g2 = K.conv_wgrad(P, maps[sel], sel, dy, prev)
        np.testing.assert_allclose(g2, prev + g, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", [CASES[i] for i in (0, 4, 7, 10, 14)],
                         ids=[IDS[i] for i in (0, 4, 7, 10, 14)])
def test_conv_wgrad_finite_differences(K, rng, case):
    P, x, w, b = make_case(case, rng)
    C, O = P["in_c"], P["out_c"]
    r = rng.standard_normal((P["out_h"], P["out_w"], O)).astype(np.float32)
    maps = np.ascontiguousarray(x.transpose(2, 0, 1))
    sel = np.sort(rng.choice(C, size=max(1, C // 2), replace=False))
    shape = slices_of(P, np.zeros(w.shape), sel).shape
    g = K.conv_wgrad(P, maps[sel], sel, r, np.zeros(shape, np.float32))

    def loss(ww):
        return float(np.sum(K.conv(P, x, ww, b).astype(np.float64) * r))
    # only the selected channels' weights are perturbed
    flat_idx = np.arange(w.size).reshape(w.shape)
    if P["groups"] != 1:
        m = O // C
        idx = np.concatenate([flat_idx[c * m:(c + 1) * m].ravel() for c in sel])
    else:
        idx = np.concatenate([flat_idx[..., c].ravel() for c in sel])
    fd = central_fd(loss, w, 0.5, idx=idx)
    assert_rel(g, slices_of(P, fd, sel), 1e-3, "finite differences")


@pytest.mark.parametrize("depthwise", [False, True])
def test_conv_wgrad_empty_selection_changes_nothing(K, rng, depthwise):
    P = conv_params(5, 5, 3, 6, 3, 3, (1, 1), (1, 1, 1, 1), depthwise=depthwise)
    dy = rng.standard_normal((P["out_h"], P["out_w"], 6)).astype(np.float32)
    maps = rng.standard_normal((3, 5, 5)).astype(np.float32)
    buf = rng.standard_normal(64).astype(np.float32)
    before = buf.copy()
    sel = np.array([0, 1], np.uint16)
    fn = K.lib.mdy_depthwise_conv2d_nhwc_f32_wgrad if depthwise else K.lib.mdy_conv2d_nhwc_f32_wgrad
    for n in (0, -1):
        fn(K.conv_p(P), K.f(maps), K.ffi.from_buffer("uint16_t[]", sel), n, K.f(dy), K.f(buf))
    fn(K.conv_p(P), K.ffi.NULL, K.ffi.NULL, 0, K.f(dy), K.ffi.NULL)
    np.testing.assert_array_equal(buf, before)


@pytest.mark.parametrize("depthwise", [False, True])
def test_conv_wgrad_out_of_range_channel_is_left_alone(K, rng, depthwise):
    # The runtime rejects such selections; the kernel still never acts on them.
    P = conv_params(4, 4, 2, 4, 3, 3, (1, 1), (1, 1, 1, 1), depthwise=depthwise)
    x = rng.standard_normal((4, 4, 2)).astype(np.float32)
    dy = rng.standard_normal((4, 4, 4)).astype(np.float32)
    maps = np.ascontiguousarray(x.transpose(2, 0, 1))
    per = 4 * 9 if not depthwise else 2 * 9
    prev = rng.standard_normal((2, per)).astype(np.float32)
    g = K.conv_wgrad(P, maps[[1, 0]], [1, 2], dy, prev)
    np.testing.assert_array_equal(g[1], prev[1])
    ref = slices_of(P, conv_wgrad_full_ref(P, x, dy), [1]).reshape(1, -1)
    assert_rel(g[0] - prev[0], ref[0], 1e-5)


def test_bias_grad(K, rng):
    dy = rng.standard_normal((12, 5)).astype(np.float32)
    db = rng.standard_normal(5).astype(np.float32)
    prev = db.copy()
    K.lib.mdy_bias_grad_nhwc_f32(12, 5, K.f(dy), K.f(db))
    assert_rel(db - prev, dy.astype(np.float64).sum(0), 1e-5, "numpy")

    # finite differences of the conv forward with respect to its bias
    P, x, w, b = make_case(CASES[0], rng)
    r = rng.standard_normal((P["out_h"], P["out_w"], P["out_c"])).astype(np.float32)
    g = np.zeros(P["out_c"], np.float32)
    K.lib.mdy_bias_grad_nhwc_f32(P["out_h"] * P["out_w"], P["out_c"], K.f(r), K.f(g))
    fd = central_fd(lambda bb: float(np.sum(K.conv(P, x, w, bb).astype(np.float64) * r)), b, 0.5)
    assert_rel(g, fd, 1e-3, "finite differences")


# ---------------------------------------------------------------- fully connected


def fc(K, x, w, b):
    y = np.empty(w.shape[0], np.float32)
    K.lib.mdy_fully_connected_f32(w.shape[1], w.shape[0], K.f(f32(x)), K.f(f32(w)),
                                  K.f(None if b is None else f32(b)), K.f(y))
    return y


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (7, 3), (32, 10)])
def test_fully_connected_forward_numpy_and_gemm(K, rng, n_in, n_out):
    from onnx import helper
    x = rng.standard_normal(n_in).astype(np.float32)
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    y = fc(K, x, w, b)
    assert_rel(y, w.astype(np.float64) @ x + b, 1e-5, "numpy")
    assert_rel(fc(K, x, w, None), w.astype(np.float64) @ x, 1e-5, "no bias")
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    y_ort = ort_run(node, [("x", x[None])], [("w", w), ("b", b)])[0]
    np.testing.assert_allclose(y, y_ort, rtol=1e-4, atol=1e-5)


def test_fully_connected_gradients(K, rng):
    n_in, n_out = 9, 4
    x = rng.standard_normal(n_in).astype(np.float32)
    w = rng.standard_normal((n_out, n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    r = rng.standard_normal(n_out).astype(np.float32)

    def loss_x(xx):
        return float(fc(K, xx, w, b).astype(np.float64) @ r)

    def loss_w(ww):
        return float(fc(K, x, ww, b).astype(np.float64) @ r)

    dx = np.full(n_in, np.nan, np.float32)
    K.lib.mdy_fully_connected_f32_igrad(n_in, n_out, K.f(w), K.f(r), K.f(dx), 0)
    assert_rel(dx, w.T.astype(np.float64) @ r, 1e-5, "igrad numpy")
    assert_rel(dx, central_fd(loss_x, x, 0.5), 1e-3, "igrad fd")
    prev = rng.standard_normal(n_in).astype(np.float32)
    acc = prev.copy()
    K.lib.mdy_fully_connected_f32_igrad(n_in, n_out, K.f(w), K.f(r), K.f(acc), 1)
    np.testing.assert_allclose(acc, prev + dx, rtol=1e-5, atol=1e-6)

    full_ref = np.outer(r.astype(np.float64), x)  # dW [out][in]
    fd_w = central_fd(loss_w, w, 0.5)
    for sel in (np.array([3]), np.arange(n_in), np.array([0, 2, 5, 8]), np.array([], int)):
        sl = np.zeros((len(sel), n_out), np.float32)
        xv = f32(x[sel])
        su, keep = K.u16(sel)
        K.lib.mdy_fully_connected_f32_wgrad(n_in, n_out, K.f(xv) if len(sel) else K.ffi.NULL,
                                            su, len(keep), K.f(r),
                                            K.f(sl) if len(sel) else K.ffi.NULL)
        if len(sel):
            assert_rel(sl, full_ref[:, sel].T, 1e-5, "wgrad numpy")
            assert_rel(sl, fd_w[:, sel].T, 1e-3, "wgrad fd")
    # accumulates
    sl = np.ones((2, n_out), np.float32)
    sel = np.array([1, 4], np.uint16)
    K.lib.mdy_fully_connected_f32_wgrad(n_in, n_out, K.f(f32(x[[1, 4]])),
                                        K.ffi.from_buffer("uint16_t[]", sel), 2, K.f(r), K.f(sl))
    assert_rel(sl - 1, full_ref[:, [1, 4]].T, 1e-5, "wgrad accumulate")
