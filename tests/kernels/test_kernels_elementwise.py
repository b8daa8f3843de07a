"""Elementwise, per-channel, concat, softmax and SGD kernels: forward against
numpy and onnxruntime, masks bit by bit, gradients against numpy and finite
differences, accumulate flag and in-place use."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from kernel_harness import f32
from kernel_refs import assert_rel, central_fd, nchw_to_nhwc, nhwc_to_nchw, ort_run

SIZES = [1, 7, 8, 9, 33]
INF = float("inf")


def away_from(x, points, gap):
    """Push values closer than `gap` to any kink out of its neighbourhood, so
    finite differences never straddle one."""
    x = np.array(x, np.float64)
    for p in points:
        close = np.abs(x - p) < gap
        x[close] = p + np.where(x[close] >= p, gap, -gap) * 2
    return x.astype(np.float32)


def packed(bits):
    return np.packbits(np.asarray(bits, np.uint8), bitorder="little")


def mask_buffer(n):
    """Mask bytes plus canary bytes behind them, pre-filled with garbage."""
    return np.full((n + 7) // 8 + 4, 0xA5, np.uint8)


def check_mask(mask, n, expected_bits):
    nb = (n + 7) // 8
    np.testing.assert_array_equal(mask[:nb], packed(expected_bits))  # tail bits 0 too
    assert (mask[nb:] == 0xA5).all(), "wrote past the mask"


# ---------------------------------------------------------------- clamp


def clamp(K, x, lo, hi, mask=None, y=None):
    x = f32(x)
    y = np.empty_like(x) if y is None else y
    K.lib.mdy_clamp_f32(x.size, K.f(x), lo, hi, K.f(y), K.u8(mask))
    return y


def clamp_igrad(K, mask, dy, dx=None, accumulate=0):
    dy = f32(dy)
    dx = np.full_like(dy, np.nan) if dx is None else dx
    K.lib.mdy_clamp_f32_igrad(dy.size, K.u8(mask), K.f(dy), K.f(dx), accumulate)
    return dx


CLAMPS = [("relu", 0.0, INF), ("relu6", 0.0, 6.0), ("clip", -1.0, 2.0)]


@pytest.mark.parametrize("name,lo,hi", CLAMPS)
@pytest.mark.parametrize("n", SIZES)
def test_clamp_forward_mask_and_onnxruntime(K, rng, name, lo, hi, n):
    x = (rng.standard_normal(n) * 5).astype(np.float32)
    x[0] = lo  # at the boundary the derivative bit is 0
    mask = mask_buffer(n)
    y = clamp(K, x, lo, hi, mask)
    np.testing.assert_array_equal(y, np.clip(x, lo, hi))
    check_mask(mask, n, (x > lo) & (x < hi))
    np.testing.assert_array_equal(clamp(K, x, lo, hi, None), y)  # mask optional

    xs = nhwc_to_nchw(x.reshape(1, n, 1))
    if name == "relu":
        node = helper.make_node("Relu", ["x"], ["y"])
        y_ort = ort_run(node, [("x", xs)])
    else:
        node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
        y_ort = ort_run(node, [("x", xs)], [("lo", np.array(lo, np.float32)),
                                            ("hi", np.array(hi, np.float32))])
    np.testing.assert_array_equal(y, nchw_to_nhwc(y_ort).reshape(-1))

    inplace = x.copy()
    m2 = mask_buffer(n)
    clamp(K, inplace, lo, hi, m2, y=inplace)
    np.testing.assert_array_equal(inplace, y)
    np.testing.assert_array_equal(m2, mask)


@pytest.mark.parametrize("name,lo,hi", CLAMPS)
def test_clamp_igrad(K, rng, name, lo, hi):
    n = 37
    x = away_from(rng.standard_normal(n) * 5, [lo, hi], 0.05)
    r = rng.standard_normal(n).astype(np.float32)
    mask = mask_buffer(n)
    clamp(K, x, lo, hi, mask)
    dx = clamp_igrad(K, mask, r)
    np.testing.assert_array_equal(dx, np.where((x > lo) & (x < hi), r, 0))
    fd = central_fd(lambda xx: float(clamp(K, xx, lo, hi).astype(np.float64) @ r), x, 0.01)
    assert_rel(dx, fd, 1e-3, "finite differences")
    prev = rng.standard_normal(n).astype(np.float32)
    np.testing.assert_allclose(clamp_igrad(K, mask, r, prev.copy(), 1), prev + dx, rtol=1e-6)
    np.testing.assert_array_equal(clamp_igrad(K, mask, r, prev.copy(), 0), dx)
    inplace = r.copy()
    clamp_igrad(K, mask, inplace, inplace, 0)
    np.testing.assert_array_equal(inplace, dx)


# ---------------------------------------------------------------- hard-sigmoid


def hsig(K, x, a, b, mask=None, y=None):
    x = f32(x)
    y = np.empty_like(x) if y is None else y
    K.lib.mdy_hardsigmoid_f32(x.size, K.f(x), a, b, K.f(y), K.u8(mask))
    return y


@pytest.mark.parametrize("alpha,beta", [(0.2, 0.5), (1 / 6, 0.5)])
@pytest.mark.parametrize("n", SIZES)
def test_hardsigmoid_forward_mask_and_onnxruntime(K, rng, alpha, beta, n):
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    mask = mask_buffer(n)
    y = hsig(K, x, alpha, beta, mask)
    a32, b32 = np.float32(alpha), np.float32(beta)
    v = (a32 * x + b32).astype(np.float32)
    np.testing.assert_allclose(y, np.clip(x.astype(np.float64) * alpha + beta, 0, 1), atol=1e-6)
    check_mask(mask, n, (v > 0) & (v < 1))
    node = helper.make_node("HardSigmoid", ["x"], ["y"], alpha=alpha, beta=beta)
    y_ort = ort_run(node, [("x", nhwc_to_nchw(x.reshape(1, n, 1)))])
    np.testing.assert_allclose(y, nchw_to_nhwc(y_ort).reshape(-1), atol=1e-6)
    inplace = x.copy()
    hsig(K, inplace, alpha, beta, None, y=inplace)
    np.testing.assert_array_equal(inplace, y)


def test_hardsigmoid_igrad(K, rng):
    n, alpha, beta = 41, 0.2, 0.5
    x = away_from(rng.standard_normal(n) * 4, [-2.5, 2.5], 0.05)
    r = rng.standard_normal(n).astype(np.float32)
    mask = mask_buffer(n)
    hsig(K, x, alpha, beta, mask)
    dx = np.full(n, np.nan, np.float32)
    K.lib.mdy_hardsigmoid_f32_igrad(n, K.u8(mask), alpha, K.f(r), K.f(dx), 0)
    assert_rel(dx, np.where(np.abs(x) < 2.5, alpha * r.astype(np.float64), 0), 1e-6, "numpy")
    fd = central_fd(lambda xx: float(hsig(K, xx, alpha, beta).astype(np.float64) @ r), x, 0.01)
    assert_rel(dx, fd, 1e-3, "finite differences")
    acc = np.ones(n, np.float32)
    K.lib.mdy_hardsigmoid_f32_igrad(n, K.u8(mask), alpha, K.f(r), K.f(acc), 1)
    np.testing.assert_allclose(acc, 1 + dx, rtol=1e-6)


# ---------------------------------------------------------------- hard-swish


def hswish(K, x, y=None):
    x = f32(x)
    y = np.empty_like(x) if y is None else y
    K.lib.mdy_hardswish_f32(x.size, K.f(x), K.f(y))
    return y


def test_hardswish_forward_numpy_and_onnxruntime(K, rng):
    x = (rng.standard_normal(200) * 4).astype(np.float32)
    x[:4] = [-3, 3, 0, -1.5]
    y = hswish(K, x)
    xd = x.astype(np.float64)
    np.testing.assert_allclose(y, xd * np.clip(xd / 6 + 0.5, 0, 1), rtol=1e-6, atol=1e-6)
    node = helper.make_node("HardSwish", ["x"], ["y"])
    y_ort = ort_run(node, [("x", nhwc_to_nchw(x.reshape(10, 20, 1)))])
    np.testing.assert_allclose(y, nchw_to_nhwc(y_ort).reshape(-1), rtol=1e-5, atol=1e-6)
    inplace = x.copy()
    hswish(K, inplace, y=inplace)
    np.testing.assert_array_equal(inplace, y)


def test_hardswish_igrad(K, rng):
    n = 60
    x = away_from(rng.standard_normal(n) * 4, [-3.0, 3.0], 0.05)
    r = rng.standard_normal(n).astype(np.float32)
    dx = np.full(n, np.nan, np.float32)
    K.lib.mdy_hardswish_f32_igrad(n, K.f(x), K.f(r), K.f(dx), 0)
    xd = x.astype(np.float64)
    d = np.where(xd < -3, 0.0, np.where(xd > 3, 1.0, xd / 3 + 0.5))
    assert_rel(dx, d * r, 1e-6, "numpy")
    fd = central_fd(lambda xx: float(hswish(K, xx).astype(np.float64) @ r), x, 0.01)
    assert_rel(dx, fd, 1e-3, "finite differences")
    acc = np.ones(n, np.float32)
    K.lib.mdy_hardswish_f32_igrad(n, K.f(x), K.f(r), K.f(acc), 1)
    np.testing.assert_allclose(acc, 1 + dx, rtol=1e-6)


# ---------------------------------------------------------------- add


def test_add_forward_igrad(K, rng):
    n = 30
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    y = np.empty(n, np.float32)
    K.lib.mdy_add_f32(n, K.f(a), K.f(b), K.f(y))
    np.testing.assert_array_equal(y, a + b)
    node = helper.make_node("Add", ["a", "b"], ["y"])
    y_ort = ort_run(node, [("a", nhwc_to_nchw(a.reshape(5, 2, 3))),
                           ("b", nhwc_to_nchw(b.reshape(5, 2, 3)))])
    np.testing.assert_array_equal(y, nchw_to_nhwc(y_ort).reshape(-1))
    inplace = a.copy()
    K.lib.mdy_add_f32(n, K.f(inplace), K.f(b), K.f(inplace))
    np.testing.assert_array_equal(inplace, y)

    r = rng.standard_normal(n).astype(np.float32)
    dx = np.full(n, np.nan, np.float32)
    K.lib.mdy_add_f32_igrad(n, K.f(r), K.f(dx), 0)
    np.testing.assert_array_equal(dx, r)

    def loss(aa):
        out = np.empty(n, np.float32)
        K.lib.mdy_add_f32(n, K.f(aa), K.f(b), K.f(out))
        return float(out.astype(np.float64) @ r)
    assert_rel(dx, central_fd(loss, a, 0.5), 1e-3, "finite differences")
    acc = np.ones(n, np.float32)
    K.lib.mdy_add_f32_igrad(n, K.f(r), K.f(acc), 1)
    np.testing.assert_array_equal(acc, np.float32(1) + r)


# ---------------------------------------------------------------- per-channel multiply


def mulc(K, x, s):
    hw, c = x.shape
    y = np.empty_like(x)
    K.lib.mdy_mul_channel_nhwc_f32(hw, c, K.f(f32(x)), K.f(f32(s)), K.f(y))
    return y


def test_mul_channel_forward_numpy_and_onnxruntime(K, rng):
    H, W, C = 3, 4, 5
    x = rng.standard_normal((H, W, C)).astype(np.float32)
    s = rng.standard_normal(C).astype(np.float32)
    y = mulc(K, x.reshape(H * W, C), s).reshape(H, W, C)
    np.testing.assert_array_equal(y, x * s)
    node = helper.make_node("Mul", ["x", "s"], ["y"])  # broadcast [1,C,H,W] * [1,C,1,1]
    y_ort = ort_run(node, [("x", nhwc_to_nchw(x)), ("s", s.reshape(1, C, 1, 1))])
    np.testing.assert_array_equal(y, nchw_to_nhwc(y_ort))
    inplace = x.reshape(H * W, C).copy()
    K.lib.mdy_mul_channel_nhwc_f32(H * W, C, K.f(inplace), K.f(s), K.f(inplace))
    np.testing.assert_array_equal(inplace.reshape(H, W, C), y)


def test_mul_channel_gradients(K, rng):
    hw, C = 6, 4
    x = rng.standard_normal((hw, C)).astype(np.float32)
    s = rng.standard_normal(C).astype(np.float32)
    r = rng.standard_normal((hw, C)).astype(np.float32)
    dx = np.full((hw, C), np.nan, np.float32)
    ds = np.full(C, np.nan, np.float32)
    K.lib.mdy_mul_channel_nhwc_f32_igrad_x(hw, C, K.f(s), K.f(r), K.f(dx), 0)
    K.lib.mdy_mul_channel_nhwc_f32_igrad_s(hw, C, K.f(x), K.f(r), K.f(ds), 0)
    assert_rel(dx, r.astype(np.float64) * s, 1e-6, "dx numpy")
    assert_rel(ds, (r.astype(np.float64) * x).sum(0), 1e-6, "ds numpy")
    fdx = central_fd(lambda xx: float(np.sum(mulc(K, xx, s).astype(np.float64) * r)), x, 0.5)
    fds = central_fd(lambda ss: float(np.sum(mulc(K, x, ss).astype(np.float64) * r)), s, 0.5)
    assert_rel(dx, fdx, 1e-3, "dx fd")
    assert_rel(ds, fds, 1e-3, "ds fd")
    accx, accs = np.ones((hw, C), np.float32), np.ones(C, np.float32)
    K.lib.mdy_mul_channel_nhwc_f32_igrad_x(hw, C, K.f(s), K.f(r), K.f(accx), 1)
    K.lib.mdy_mul_channel_nhwc_f32_igrad_s(hw, C, K.f(x), K.f(r), K.f(accs), 1)
    np.testing.assert_allclose(accx, 1 + dx, rtol=1e-6)
    np.testing.assert_allclose(accs, 1 + ds, rtol=1e-6)
    inplace = r.copy()
    K.lib.mdy_mul_channel_nhwc_f32_igrad_x(hw, C, K.f(s), K.f(inplace), K.f(inplace), 0)
    np.testing.assert_array_equal(inplace, dx)


# ---------------------------------------------------------------- concat


def concat(K, a, b):
    hw, ca = a.shape
    cb = b.shape[1]
    y = np.empty((hw, ca + cb), np.float32)
    K.lib.mdy_concat_channels_nhwc_f32(hw, ca, cb, K.f(f32(a)), K.f(f32(b)), K.f(y))
    return y


@pytest.mark.parametrize("ca,cb", [(1, 1), (3, 5), (4, 1)])
def test_concat_forward_and_igrad(K, rng, ca, cb):
    H, W = 2, 3
    a = rng.standard_normal((H, W, ca)).astype(np.float32)
    b = rng.standard_normal((H, W, cb)).astype(np.float32)
    y = concat(K, a.reshape(-1, ca), b.reshape(-1, cb)).reshape(H, W, ca + cb)
    np.testing.assert_array_equal(y, np.concatenate([a, b], axis=2))
    node = helper.make_node("Concat", ["a", "b"], ["y"], axis=1)
    y_ort = ort_run(node, [("a", nhwc_to_nchw(a)), ("b", nhwc_to_nchw(b))])
    np.testing.assert_array_equal(y, nchw_to_nhwc(y_ort))

    hw = H * W
    r = rng.standard_normal((hw, ca + cb)).astype(np.float32)
    for part, (src, c) in enumerate([(a, ca), (b, cb)]):
        dx = np.full((hw, c), np.nan, np.float32)
        K.lib.mdy_concat_channels_nhwc_f32_igrad(hw, ca, cb, part, K.f(r), K.f(dx), 0)
        np.testing.assert_array_equal(dx, r[:, :ca] if part == 0 else r[:, ca:])
        if part == 0:
            fd = central_fd(lambda aa: float(np.sum(concat(K, aa, b.reshape(hw, cb)) * r)),
                            a.reshape(hw, ca), 0.5)
        else:
            fd = central_fd(lambda bb: float(np.sum(concat(K, a.reshape(hw, ca), bb) * r)),
                            b.reshape(hw, cb), 0.5)
        assert_rel(dx, fd, 1e-3, "finite differences")
        acc = np.ones((hw, c), np.float32)
        K.lib.mdy_concat_channels_nhwc_f32_igrad(hw, ca, cb, part, K.f(r), K.f(acc), 1)
        np.testing.assert_allclose(acc, 1 + dx, rtol=1e-6)


# ---------------------------------------------------------------- softmax and cross-entropy


def softmax_ref(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("n", [1, 2, 10, 100])
def test_softmax_numpy_and_onnxruntime(K, rng, n):
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    y = np.empty(n, np.float32)
    K.lib.mdy_softmax_f32(n, K.f(x), K.f(y))
    assert_rel(y, softmax_ref(x), 1e-6)
    node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
    np.testing.assert_allclose(y, ort_run(node, [("x", x[None])])[0], rtol=1e-5, atol=1e-7)
    inplace = x.copy()
    K.lib.mdy_softmax_f32(n, K.f(inplace), K.f(inplace))
    np.testing.assert_array_equal(inplace, y)
    big = x + np.float32(1000)  # shifted by the maximum: no overflow
    K.lib.mdy_softmax_f32(n, K.f(big), K.f(big))
    assert np.isfinite(big).all()
    assert_rel(big, softmax_ref(x), 1e-4)


def xent(K, logits, label, scale=1.0, out=None):
    logits = f32(logits)
    out = np.empty_like(logits) if out is None else out
    loss = K.lib.mdy_softmax_xent_f32(logits.size, K.f(logits), label, scale, K.f(out))
    return loss, out


@pytest.mark.parametrize("n", [2, 10, 37])
def test_softmax_xent_loss_and_dlogits(K, rng, n):
    x = (rng.standard_normal(n) * 2).astype(np.float32)
    label = int(rng.integers(n))
    p = softmax_ref(x)
    loss, d = xent(K, x, label, 1.0)
    assert abs(loss - (-np.log(p[label]))) <= 1e-5 * max(1.0, abs(loss))
    onehot = np.eye(n)[label]
    assert_rel(d, p - onehot, 1e-5, "numpy")
    fd = central_fd(lambda xx: float(xent(K, xx, label)[0]), x, 0.01)
    assert_rel(d, fd, 1e-3, "finite differences")
    _, d4 = xent(K, x, label, 0.25)
    assert_rel(d4, 0.25 * (p - onehot), 1e-5, "scale")
    inplace = x.copy()
    loss2, _ = xent(K, inplace, label, 1.0, out=inplace)
    assert loss2 == loss
    np.testing.assert_array_equal(inplace, d)
    loss_big, dbig = xent(K, x + np.float32(500), label)  # large logits stay finite
    assert np.isfinite(loss_big) and abs(loss_big - loss) < 1e-3
    assert np.isfinite(dbig).all()


def test_softmax_xent_bad_label_reads_nothing_out_of_range(K, rng):
    x = rng.standard_normal(5).astype(np.float32)
    for label in (-1, 5, 1 << 20):
        loss, d = xent(K, x, label)
        assert loss == 0.0
        assert_rel(d, softmax_ref(x), 1e-5)


# ---------------------------------------------------------------- SGD


@pytest.mark.parametrize("stride", [1, 3])
def test_sgd_slice(K, rng, stride):
    n, lr = 11, 0.05
    w = rng.standard_normal(n * stride + 2).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    w0, g0 = w.copy(), g.copy()
    sq = K.lib.mdy_sgd_slice_f32(n, K.f(w), stride, K.f(g), lr)
    assert abs(sq - float(g0.astype(np.float64) @ g0)) <= 1e-5 * sq
    exp = w0.copy()
    exp[: n * stride: stride] = w0[: n * stride: stride] - np.float32(lr) * g0
    np.testing.assert_allclose(w, exp, rtol=1e-6, atol=1e-7)
    untouched = np.ones(w.size, bool)
    untouched[: n * stride: stride] = False
    np.testing.assert_array_equal(w[untouched], w0[untouched])
    assert (g == 0).all()
    assert K.lib.mdy_sgd_slice_f32(0, K.f(w), stride, K.f(g), lr) == 0.0


@pytest.mark.parametrize("n", [2, 10])
def test_softmax_xent_onnxruntime(K, rng, n):
    x = (rng.standard_normal(n) * 2).astype(np.float32)
    label = int(rng.integers(n))
    node = helper.make_node("SoftmaxCrossEntropyLoss", ["x", "label"], ["y"], reduction="mean")
    loss_ort = ort_run(node, [("x", x[None])], [("label", np.array([label], np.int64))])
    loss, _ = xent(K, x, label)
    assert abs(loss - float(loss_ort)) <= 1e-5 * max(1.0, abs(loss))
