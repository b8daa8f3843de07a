"""int8 kernels against onnxruntime running single-op QDQ models
(DequantizeLinear -> op -> QuantizeLinear, per-channel int8 weights, int32
bias), with ORT's graph optimizations on (it fuses them into its own int8
kernels: QLinearConv, QLinearAdd, ...) and off (the float op between the
casts): at most 1 LSB per element. The share of differing elements is printed
(`pytest -s`); docs/ARCHITECTURE.md quotes it."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from int8_harness import Kernels8, rand_codes, rand_scale, rand_zero
from int8_refs import dq_bias_nodes, dq_weight_nodes, lsb_report, qdq_run
from kernel_harness import conv_params, pool_params
from kernel_refs import conv_ref, nchw_to_nhwc, nhwc_to_nchw
from medyate.planner import quant as Q

OPT = [True, False]
OPT_IDS = ["ort-fused", "ort-float"]


@pytest.fixture(scope="module")
def K8(K):
    return Kernels8(K)


def within_one_lsb(what, y, y_ort):
    worst, share = lsb_report(what, y, y_ort)
    assert worst <= 1, f"{what}: {worst} LSB from onnxruntime"
    return share


# ---------------------------------------------------------------- convs

CONVS = [  # H, W, C, O, k, stride, pads (t, l, b, r), depthwise, activation
    (8, 8, 16, 24, 1, 1, (0, 0, 0, 0), False, None),
    (9, 7, 5, 7, 3, 1, (1, 1, 1, 1), False, "relu"),
    (11, 11, 3, 16, 3, 2, (1, 1, 1, 1), False, "relu6"),
    (7, 9, 6, 6, 5, 1, (2, 2, 2, 2), False, None),
    (10, 10, 13, 13, 3, 1, (1, 1, 1, 1), True, "relu6"),
    (9, 9, 8, 8, 3, 2, (0, 1, 1, 0), True, None),
    (8, 8, 5, 10, 7, 1, (3, 3, 3, 3), True, "relu"),
]


def conv_qdq(rng, case):
    H, W, C, O, k, s, pads, dw, act = case
    P = conv_params(H, W, C, O, k, k, (s, s), pads, depthwise=dw)
    xz, x_scale = rand_zero(rng), rand_scale(rng, 0.01, 0.05)
    x = rand_codes(rng, (H, W, C))
    w = rand_codes(rng, (O, k, k, 1 if dw else C))
    w_scales = np.array([rand_scale(rng, 1e-3, 2e-2) for _ in range(O)], np.float32)
    b = rng.integers(-3000, 3000, O).astype(np.int32)
    acc = conv_ref(P, x.astype(np.int64) - xz, w.astype(np.int64), b)
    y_scale = float(np.float32(x_scale * np.std(acc * w_scales) / 35.0))
    yz = int(rng.integers(-30, 31))
    lo, hi = {None: (-np.inf, np.inf), "relu": (0.0, np.inf), "relu6": (0.0, 6.0)}[act]
    q = Q.conv_quant(x_scale, w_scales, y_scale, xz, yz, Q.act_range(y_scale, yz, lo, hi))
    wn, wc = dq_weight_nodes("w", w.transpose(0, 3, 1, 2), w_scales)
    bn, bc = dq_bias_nodes("b", b, np.float32(x_scale) * w_scales)
    t, l, bb, r = pads
    nodes = wn + bn + [helper.make_node(
        "Conv", ["x_f", "w_f", "b_f"], ["c_f" if act else "y_f"], kernel_shape=[k, k],
        strides=[s, s], pads=[t, l, bb, r], group=C if dw else 1)]
    if act == "relu":
        nodes.append(helper.make_node("Relu", ["c_f"], ["y_f"]))
    elif act == "relu6":
        nodes.append(helper.make_node("Clip", ["c_f", "lo", "hi"], ["y_f"]))
    consts = wc + bc + [("lo", np.float32(0.0)), ("hi", np.float32(6.0))]
    return P, q, x, w, b, nodes, consts, (x_scale, xz), (y_scale, yz)


@pytest.mark.parametrize("optimize", OPT, ids=OPT_IDS)
@pytest.mark.parametrize("case", CONVS, ids=lambda c: f"{'dw' if c[7] else 'conv'}{c[4]}x{c[4]}"
                         f"s{c[5]}-{c[0]}x{c[1]}x{c[2]}-{c[3]}-{c[8]}")
def test_conv_against_onnxruntime_qdq(K8, rng, case, optimize):
    P, q, x, w, b, nodes, consts, xq, yq = conv_qdq(rng, case)
    y = K8.conv(P, q, x, w, b)
    y_ort = nchw_to_nhwc(qdq_run(nodes, {"x": nhwc_to_nchw(x)}, consts, {"x": xq}, yq,
                                 optimize=optimize))
    within_one_lsb(f"{'depthwise' if case[7] else 'conv'} {case}", y, y_ort)


@pytest.mark.parametrize("optimize", OPT, ids=OPT_IDS)
@pytest.mark.parametrize("n_in,n_out", [(16, 10), (160, 33), (7, 1)])
def test_fully_connected_against_onnxruntime_qdq(K8, rng, n_in, n_out, optimize):
    xz, xs = rand_zero(rng), rand_scale(rng, 0.01, 0.05)
    x, w = rand_codes(rng, n_in), rand_codes(rng, (n_out, n_in))
    ws = np.array([rand_scale(rng, 1e-3, 1e-2) for _ in range(n_out)], np.float32)
    b = rng.integers(-3000, 3000, n_out).astype(np.int32)
    acc = w.astype(np.int64) @ (x.astype(np.int64) - xz) + b
    ys = float(np.float32(xs * (np.std(acc * ws) + 1e-3) / 35.0))
    q = Q.conv_quant(xs, ws, ys, xz, -4)
    wn, wc = dq_weight_nodes("w", w, ws)
    bn, bc = dq_bias_nodes("b", b, np.float32(xs) * ws)
    nodes = wn + bn + [helper.make_node("Gemm", ["x_f", "w_f", "b_f"], ["y_f"], transB=1)]
    y_ort = qdq_run(nodes, {"x": x[None]}, wc + bc, {"x": (xs, xz)}, (ys, -4),
                    optimize=optimize)[0]
    within_one_lsb(f"fully connected {n_in}->{n_out}", K8.fc(q, x, w, b), y_ort)


# ---------------------------------------------------------------- elementwise


@pytest.mark.parametrize("optimize", OPT, ids=OPT_IDS)
def test_add_against_onnxruntime_qdq(K8, rng, optimize):
    for relu in (False, True):
        sa, sb = rand_scale(rng), rand_scale(rng)
        sy = float(np.float32((sa + sb) * 0.8))
        za, zb, zy = rand_zero(rng), rand_zero(rng), int(rng.integers(-20, 21))
        act = Q.act_range(sy, zy, 0.0) if relu else (-128, 127)
        q = Q.add_quant(sa, za, sb, zb, sy, zy, act)
        a, b = rand_codes(rng, (1, 7, 9, 9)), rand_codes(rng, (1, 7, 9, 9))
        nodes = [helper.make_node("Add", ["a_f", "b_f"], ["s_f" if relu else "y_f"])]
        if relu:
            nodes.append(helper.make_node("Relu", ["s_f"], ["y_f"]))
        y_ort = qdq_run(nodes, {"a": a, "b": b}, [], {"a": (sa, za), "b": (sb, zb)}, (sy, zy),
                        optimize=optimize)
        within_one_lsb(f"add relu={relu}", K8.add(q, a, b), y_ort)


@pytest.mark.parametrize("optimize", OPT, ids=OPT_IDS)
def test_squeeze_excite_mul_against_onnxruntime_qdq(K8, rng, optimize):
    H, W, C = 6, 5, 19
    xs, xz = rand_scale(rng), rand_zero(rng)
    ss, sz = 1.0 / 256, -128                       # a hard-sigmoid's output quantization
    ys, yz = float(np.float32(xs * 0.7)), int(rng.integers(-10, 11))
    q = Q.mul_quant(xs, xz, ss, sz, ys, yz)
    x, s = rand_codes(rng, (H, W, C)), rand_codes(rng, C)
    nodes = [helper.make_node("Mul", ["x_f", "s_f"], ["y_f"])]
    y_ort = qdq_run(nodes, {"x": nhwc_to_nchw(x), "s": s.reshape(1, C, 1, 1)}, [],
                    {"x": (xs, xz), "s": (ss, sz)}, (ys, yz), optimize=optimize)
    within_one_lsb("squeeze-excite mul", K8.mul_channel(q, x.reshape(-1, C), s),
                   nchw_to_nhwc(y_ort).reshape(-1, C))



@pytest.mark.parametrize("optimize", OPT, ids=OPT_IDS)
@pytest.mark.parametrize("op", ["HardSwish", "HardSigmoid"])
def test_hard_activations_against_onnxruntime_qdq(K8, op, optimize):
    xs, xz = 0.047, 7
    ys, yz = (0.031, -90) if op == "HardSwish" else (1.0 / 256, -128)
    table = (Q.hardswish_table(xs, xz, ys, yz) if op == "HardSwish"
             else Q.hardsigmoid_table(0.2, 0.5, xs, xz, ys, yz))
    x = np.arange(-128, 128, dtype=np.int64).astype(np.int8).reshape(1, 1, 16, 16)
    y_ort = qdq_run([helper.make_node(op, ["x_f"], ["y_f"])], {"x": x}, [], {"x": (xs, xz)},
                    (ys, yz), optimize=optimize)
    within_one_lsb(f"{op} (all 256 codes)", K8.table(table, x), y_ort)


def test_quantize_dequantize_equal_onnxruntime(K8, rng):
    from onnx import TensorProto
    import onnxruntime as ort
    scale, zero = np.float32(0.0173), np.int8(-9)
    xf = (rng.standard_normal((1, 3, 8, 8)) * 1.5).astype(np.float32)
    xf.reshape(-1)[:6] = np.float32([0.5, 1.5, 2.5, -0.5, -1.5, 1e6]) * scale
    g = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], "qd",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(xf.shape))],
        [helper.make_tensor_value_info("q", TensorProto.INT8, None),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("s", TensorProto.FLOAT, [], [float(scale)]),
                     helper.make_tensor("z", TensorProto.INT8, [], [int(zero)])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    q_ort, y_ort = ort.InferenceSession(m.SerializeToString(), so,
                                        providers=["CPUExecutionProvider"]).run(None, {"x": xf})
    q = K8.quantize(xf, scale, int(zero))
    np.testing.assert_array_equal(q, q_ort)                   # bit for bit
    np.testing.assert_array_equal(K8.dequantize(q, scale, int(zero)), y_ort)
    lsb_report("quantize", q, q_ort)


# ---------------------------------------------------------------- pools and concat

POOLS = [  # H, W, C, k, stride, pads, count_include_pad
    (8, 8, 5, 2, 2, (0, 0, 0, 0), 0),
    (9, 9, 7, 3, 2, (1, 1, 1, 1), 0),
    (9, 9, 7, 3, 2, (1, 1, 1, 1), 1),
    (7, 10, 3, 3, 1, (1, 0, 1, 2), 0),
]


@pytest.mark.parametrize("optimize", OPT, ids=OPT_IDS)
@pytest.mark.parametrize("case", POOLS, ids=lambda c: f"{c[0]}x{c[1]}x{c[2]}-k{c[3]}s{c[4]}"
                         f"p{''.join(map(str, c[5]))}-cip{c[6]}")
def test_pools_against_onnxruntime_qdq(K8, rng, case, optimize):
    H, W, C, k, s, pads, cip = case
    P = pool_params(H, W, C, k, k, (s, s), pads, count_include_pad=cip)
    x = rand_codes(rng, (H, W, C))
    for same in (True, False):
        xs, xz = rand_scale(rng), rand_zero(rng)
        ys, yz = (xs, xz) if same else (float(np.float32(xs * rng.uniform(0.6, 1.6))),
                                        int(rng.integers(-30, 31)))
        q = Q.rescale_quant(xs, xz, ys, yz)
        kw = dict(kernel_shape=[k, k], strides=[s, s], pads=list(pads))
        avg = helper.make_node("AveragePool", ["x_f"], ["y_f"], count_include_pad=cip, **kw)
        y_ort = nchw_to_nhwc(qdq_run([avg], {"x": nhwc_to_nchw(x)}, [], {"x": (xs, xz)},
                                     (ys, yz), optimize=optimize))
        within_one_lsb(f"avgpool {case} same_q={same}", K8.avgpool(P, q, x), y_ort)
        mx = helper.make_node("MaxPool", ["x_f"], ["y_f"], **kw)
        y_ort = nchw_to_nhwc(qdq_run([mx], {"x": nhwc_to_nchw(x)}, [], {"x": (xs, xz)},
                                     (ys, yz), optimize=optimize))
        within_one_lsb(f"maxpool {case} same_q={same}", K8.maxpool(P, q, x), y_ort)


@pytest.mark.parametrize("optimize", OPT, ids=OPT_IDS)
@pytest.mark.parametrize("h,w,c", [(7, 7, 13), (4, 4, 96), (1, 1, 5)])
def test_global_avgpool_against_onnxruntime_qdq(K8, rng, h, w, c, optimize):
    x = rand_codes(rng, (h, w, c))
    for same in (True, False):
        xs, xz = rand_scale(rng), rand_zero(rng)
        ys, yz = (xs, xz) if same else (float(np.float32(xs * 0.8)), 5)
        q = Q.rescale_quant(xs, xz, ys, yz)
        y_ort = qdq_run([helper.make_node("GlobalAveragePool", ["x_f"], ["y_f"])],
                        {"x": nhwc_to_nchw(x)}, [], {"x": (xs, xz)}, (ys, yz),
                        optimize=optimize).reshape(-1)
        within_one_lsb(f"global avgpool {h}x{w}x{c} same_q={same}", K8.global_avgpool(q, x),
                       y_ort)


@pytest.mark.parametrize("optimize", OPT, ids=OPT_IDS)
def test_concat_against_onnxruntime_qdq(K8, rng, optimize):
    a, b = rand_codes(rng, (5, 6, 7)), rand_codes(rng, (5, 6, 4))
    sa, za, sb, zb = rand_scale(rng), rand_zero(rng), rand_scale(rng), rand_zero(rng)
    sy, zy = float(np.float32(max(sa, sb))), 3
    qa, qb = Q.rescale_quant(sa, za, sy, zy), Q.rescale_quant(sb, zb, sy, zy)
    y_ort = qdq_run([helper.make_node("Concat", ["a_f", "b_f"], ["y_f"], axis=1)],
                    {"a": nhwc_to_nchw(a), "b": nhwc_to_nchw(b)}, [],
                    {"a": (sa, za), "b": (sb, zb)}, (sy, zy), optimize=optimize)
    within_one_lsb("concat", K8.concat(qa, qb, a, b), nchw_to_nhwc(y_ort))
