"""numpy references of the int8 kernels' integer arithmetic (built on
medyate.planner.quant.requantize and an independent exact check of it), and
single-op QDQ ONNX models for onnxruntime (NCHW <-> NHWC handled here)."""
from __future__ import annotations

import numpy as np

from kernel_refs import _pad, _window, conv_ref
from medyate.planner import quant as Q

# ---------------------------------------------------------------- integer references


def _acc_exact(a):
    """float64 sums of small integers are exact below 2^53: back to int64."""
    a = np.asarray(a)
    assert np.all(np.abs(a) < 2.0 ** 52)
    return np.rint(a).astype(np.int64)


def conv_s8_ref(P, q, x, w, b=None):
    xs = np.asarray(x, np.int64) - q["x_zero"]          # padding = real 0 = the zero point
    acc = _acc_exact(conv_ref(P, xs, np.asarray(w, np.int64), b))
    return Q.clamp(Q.requantize(acc, q["multiplier"], q["shift"]) + q["y_zero"],
                   q["act_min"], q["act_max"])


def fc_s8_ref(q, x, w, b=None):
    acc = (np.asarray(w, np.int64) @ (np.asarray(x, np.int64) - q["x_zero"]))
    if b is not None:
        acc = acc + np.asarray(b, np.int64)
    return Q.clamp(Q.requantize(acc, q["multiplier"], q["shift"]) + q["y_zero"],
                   q["act_min"], q["act_max"])


def add_s8_ref(q, a, b):
    L = 1 << Q.ADD_LEFT_SHIFT
    ra = Q.requantize((np.asarray(a, np.int64) - q["a_zero"]) * L, q["a_multiplier"], q["a_shift"])
    rb = Q.requantize((np.asarray(b, np.int64) - q["b_zero"]) * L, q["b_multiplier"], q["b_shift"])
    y = Q.requantize(ra + rb, q["y_multiplier"], q["y_shift"]) + q["y_zero"]
    return Q.clamp(y, q["act_min"], q["act_max"])


def mul_s8_ref(q, x, s):
    prod = (np.asarray(x, np.int64) - q["x_zero"]) * (np.asarray(s, np.int64) - q["s_zero"])
    return Q.clamp(Q.requantize(prod, q["multiplier"], q["shift"]) + q["y_zero"],
                   q["act_min"], q["act_max"])


def rescale_s8_ref(q, x):
    v = Q.requantize(np.asarray(x, np.int64) - q["x_zero"], q["multiplier"], q["shift"])
    return Q.clamp(v + q["y_zero"], q["act_min"], q["act_max"])


def avgpool_s8_ref(P, q, x, count_include_pad):
    xs = np.asarray(x, np.float64) - q["x_zero"]
    ones = np.ones(xs.shape[:2] + (1,))
    xp, op = _pad(xs, P), _pad(ones, P)
    s = np.zeros((P["out_h"], P["out_w"], xs.shape[2]))
    n = np.zeros((P["out_h"], P["out_w"], 1))
    for kh in range(P["k_h"]):
        for kw in range(P["k_w"]):
            s += _window(xp, P, kh, kw)
            n += _window(op, P, kh, kw)
    if count_include_pad:
        n[:] = P["k_h"] * P["k_w"]
    n = np.maximum(n, 1)
    y = Q.pool_requantize(_acc_exact(s), _acc_exact(n), q["multiplier"], q["shift"])
    return Q.clamp(y + q["y_zero"], q["act_min"], q["act_max"])


def global_avgpool_s8_ref(q, x):
    xs = np.asarray(x, np.int64) - q["x_zero"]
    s = xs.reshape(-1, xs.shape[-1]).sum(0)
    y = Q.pool_requantize(s, xs.shape[0] * xs.shape[1], q["multiplier"], q["shift"])
    return Q.clamp(y + q["y_zero"], q["act_min"], q["act_max"])


def maxpool_s8_ref(P, q, x):
    from kernel_refs import maxpool_ref
    m, _ = maxpool_ref(P, np.asarray(x, np.float64))
    return rescale_s8_ref(q, _acc_exact(m))


# ---------------------------------------------------------------- independent check


def requantize_exact(v: int, multiplier: int, shift: int) -> int:
    """The documented double rounding in Python integers, written from the
    rules (not from the implementation): saturated left shift, then
    round(v * m / 2^31) with ties toward +infinity (gemmlowp's nudge and
    truncation), then round(. / 2^right) with ties away from zero."""
    def round_away(num: int, den: int) -> int:
        q, r = divmod(abs(num), den)
        q += 2 * r >= den
        return q if num >= 0 else -q
    left, right = max(shift, 0), max(-shift, 0)
    v = max(Q.INT32_MIN, min(Q.INT32_MAX, v * (1 << left)))
    if v == multiplier == Q.INT32_MIN:
        high = Q.INT32_MAX
    else:
        high = (2 * v * multiplier + (1 << 31)) // (1 << 32)     # floor(x + 1/2)
    return round_away(high, 1 << right)


# ---------------------------------------------------------------- onnxruntime QDQ


def _qdq_session(nodes, inputs, outputs, inits, opset=17, optimize=True):
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, "qdq_op", inputs, outputs,
                              initializer=[numpy_helper.from_array(np.asarray(a), n)
                                           for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def qdq_run(op_nodes, feeds: dict, consts: list, in_q: dict, out_q: tuple, optimize=True,
            float_out=False):
    """Run `op_nodes` (float ops reading '<name>_f' and writing 'y_f') between
    DequantizeLinear of the int8 feeds (in_q[name] = (scale, zero)) and a
    QuantizeLinear of the output (out_q = (scale, zero)); consts are
    initializers (name, array). Returns the int8 output (or the float output
    when float_out: no QuantizeLinear)."""
    from onnx import TensorProto, helper

    nodes, inits, inputs = [], list(consts), []
    for name, arr in feeds.items():
        s, z = in_q[name]
        inputs.append(helper.make_tensor_value_info(name, TensorProto.INT8, list(arr.shape)))
        inits += [(f"{name}_s", np.float32(s)), (f"{name}_z", np.int8(z))]
        nodes.append(helper.make_node("DequantizeLinear", [name, f"{name}_s", f"{name}_z"],
                                      [f"{name}_f"]))
    nodes += op_nodes
    if float_out:
        nodes.append(helper.make_node("Identity", ["y_f"], ["y"]))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    else:
        inits += [("y_s", np.float32(out_q[0])), ("y_z", np.int8(out_q[1]))]
        nodes.append(helper.make_node("QuantizeLinear", ["y_f", "y_s", "y_z"], ["y"]))
        out = helper.make_tensor_value_info("y", TensorProto.INT8, None)
    sess = _qdq_session(nodes, inputs, [out], inits, optimize=optimize)
    return sess.run(["y"], {k: np.asarray(v) for k, v in feeds.items()})[0]


def dq_weight_nodes(name, w_int, w_scales, axis=0):
    """Per-channel int8 weight as initializer + DequantizeLinear -> '<name>_f'."""
    from onnx import helper
    consts = [(f"{name}_q", np.asarray(w_int, np.int8)),
              (f"{name}_s", np.asarray(w_scales, np.float32)),
              (f"{name}_z", np.zeros(np.size(w_scales), np.int8))]
    node = helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"],
                            [f"{name}_f"], axis=axis)
    return [node], consts


def dq_bias_nodes(name, b_int, b_scales):
    from onnx import helper
    consts = [(f"{name}_q", np.asarray(b_int, np.int32)),
              (f"{name}_s", np.asarray(b_scales, np.float32)),
              (f"{name}_z", np.zeros(np.size(b_scales), np.int32))]
    node = helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"],
                            [f"{name}_f"], axis=0)
    return [node], consts


def lsb_report(what, y, y_ref):
    """Max |difference| in LSB and the share of differing elements (printed,
    so that `pytest -s` shows the figures the docs quote)."""
    d = np.abs(np.asarray(y, np.int64) - np.asarray(y_ref, np.int64))
    share = float((d != 0).mean()) if d.size else 0.0
    print(f"[int8 vs onnxruntime] {what}: max {int(d.max()) if d.size else 0} LSB, "
          f"{100 * share:.2f}% of {d.size} elements differ")
    return int(d.max()) if d.size else 0, share
