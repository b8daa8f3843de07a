"""Independent float64 numpy references for the fp32 kernels, finite
differences, and single-op onnxruntime models (NCHW <-> NHWC handled here)."""
from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------- comparisons


def rel_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def assert_rel(a, b, tol=1e-3, what=""):
    e = rel_err(a, b)
    assert e <= tol, f"{what}: relative error {e:.3g} > {tol}"


def central_fd(fn, x, eps, idx=None):
    """d fn / d x[idx] by central differences. fn maps a float32 array to a
    float64 scalar. The denominator is the actual float32 step taken, so the
    rounding of x +- eps does not count as error."""
    x = np.array(x, np.float32)
    g = np.zeros(x.shape, np.float64)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    for i in (range(flat.size) if idx is None else idx):
        v = flat[i]
        hi, lo = np.float32(v + eps), np.float32(v - eps)
        flat[i] = hi
        fp = fn(x)
        flat[i] = lo
        fm = fn(x)
        flat[i] = v
        gf[i] = (fp - fm) / (np.float64(hi) - np.float64(lo))
    return g


# ---------------------------------------------------------------- conv


def _pad(x, P):
    """Zero-pad an [H][W][C] map so every window of the conv/pool fits."""
    H, W = x.shape[:2]
    t, l = P["pad_top"], P["pad_left"]
    need_h = (P["out_h"] - 1) * P["stride_h"] + P["k_h"]
    need_w = (P["out_w"] - 1) * P["stride_w"] + P["k_w"]
    xp = np.zeros((max(need_h, H + t), max(need_w, W + l)) + x.shape[2:], np.float64)
    xp[t:t + H, l:l + W] = x
    return xp


def _window(xp, P, kh, kw):
    sh, sw = P["stride_h"], P["stride_w"]
    return xp[kh:kh + (P["out_h"] - 1) * sh + 1:sh, kw:kw + (P["out_w"] - 1) * sw + 1:sw]


def conv_ref(P, x, w, b=None):
    """x [H][W][C], w OHWI ([O][KH][KW][C] dense, [O][KH][KW][1] or [O][KH][KW]
    depthwise)."""
    x = np.asarray(x, np.float64)
    O = P["out_c"]
    w = np.asarray(w, np.float64).reshape(O, P["k_h"], P["k_w"], -1)
    xp = _pad(x, P)
    y = np.zeros((P["out_h"], P["out_w"], O))
    dw = P["groups"] != 1
    m = O // P["in_c"]
    for kh in range(P["k_h"]):
        for kw in range(P["k_w"]):
            patch = _window(xp, P, kh, kw)
            if dw:
                y += patch[:, :, np.arange(O) // m] * w[:, kh, kw, 0]
            else:
                y += patch @ w[:, kh, kw, :].T
    if b is not None:
        y += np.asarray(b, np.float64)
    return y


def conv_igrad_ref(P, w, dy):
    O, C = P["out_c"], P["in_c"]
    w = np.asarray(w, np.float64).reshape(O, P["k_h"], P["k_w"], -1)
    dy = np.asarray(dy, np.float64)
    dxp = _pad(np.zeros((P["in_h"], P["in_w"], C)), P)
    dw = P["groups"] != 1
    m = O // C
    for kh in range(P["k_h"]):
        for kw in range(P["k_w"]):
            view = _window(dxp, P, kh, kw)
            if dw:
                view += (dy * w[:, kh, kw, 0]).reshape(P["out_h"], P["out_w"], C, m).sum(-1)
            else:
                view += dy @ w[:, kh, kw, :]
    t, l = P["pad_top"], P["pad_left"]
    return dxp[t:t + P["in_h"], l:l + P["in_w"]]


def conv_wgrad_full_ref(P, x, dy):
    """The full dW in OHWI ([O][KH][KW][C] dense, [O][KH][KW][1] depthwise)."""
    O, C = P["out_c"], P["in_c"]
    xp = _pad(np.asarray(x, np.float64), P)
    dy = np.asarray(dy, np.float64)
    dw = P["groups"] != 1
    m = O // C
    g = np.zeros((O, P["k_h"], P["k_w"], 1 if dw else C))
    for kh in range(P["k_h"]):
        for kw in range(P["k_w"]):
            patch = _window(xp, P, kh, kw)
            if dw:
                g[:, kh, kw, 0] = np.einsum("hwo,hwo->o", patch[:, :, np.arange(O) // m], dy)
            else:
                g[:, kh, kw, :] = np.einsum("hwi,hwo->oi", patch, dy)
    return g


def slices_of(P, g_full, sel):
    """The header's slice layout of the selected input channels, from a full
    OHWI gradient: dense W[:, c] -> [O][KH][KW]; depthwise W[c*m..c*m+m-1]."""
    O, C = P["out_c"], P["in_c"]
    if P["groups"] != 1:
        m = O // C
        return np.stack([g_full[c * m:(c + 1) * m, :, :, 0] for c in sel]) if len(sel) else \
            np.zeros((0, m, P["k_h"], P["k_w"]))
    return np.stack([g_full[:, :, :, c] for c in sel]) if len(sel) else \
        np.zeros((0, O, P["k_h"], P["k_w"]))


# ---------------------------------------------------------------- pools


def avgpool_ref(P, x, count_include_pad):
    x = np.asarray(x, np.float64)
    ones = np.ones(x.shape[:2] + (1,))
    xp, op = _pad(x, P), _pad(ones, P)
    s = np.zeros((P["out_h"], P["out_w"], x.shape[2]))
    n = np.zeros((P["out_h"], P["out_w"], 1))
    for kh in range(P["k_h"]):
        for kw in range(P["k_w"]):
            s += _window(xp, P, kh, kw)
            n += _window(op, P, kh, kw)
    if count_include_pad:
        n[:] = P["k_h"] * P["k_w"]
    return s / np.maximum(n, 1)


def maxpool_ref(P, x):
    """y and, per output element, the window position of the first maximum."""
    x = np.asarray(x, np.float64)
    H, W, C = x.shape
    xp = np.full((max((P["out_h"] - 1) * P["stride_h"] + P["k_h"], H + P["pad_top"]),
                  max((P["out_w"] - 1) * P["stride_w"] + P["k_w"], W + P["pad_left"]), C),
                 -np.inf)
    xp[P["pad_top"]:P["pad_top"] + H, P["pad_left"]:P["pad_left"] + W] = x
    stack = np.stack([_window(xp, P, kh, kw)
                      for kh in range(P["k_h"]) for kw in range(P["k_w"])])
    idx = np.argmax(stack, axis=0)  # argmax returns the first maximum
    return stack.max(axis=0), idx


def maxpool_mask_bits(P, idx):
    """Pack window positions LSB-first, b bits each, in NHWC output order."""
    b = 0
    while (1 << b) < P["k_h"] * P["k_w"]:
        b += 1
    flat = idx.reshape(-1)
    bits = np.zeros(flat.size * b, np.uint8)
    for j in range(b):
        bits[j::b] = (flat >> j) & 1
    return np.packbits(bits, bitorder="little") if bits.size else np.zeros(0, np.uint8)


def maxpool_igrad_ref(P, idx, dy):
    dy = np.asarray(dy, np.float64)
    H, W, C = P["in_h"], P["in_w"], P["c"]
    dx = np.zeros((H, W, C))
    for oh in range(P["out_h"]):
        for ow in range(P["out_w"]):
            for c in range(C):
                t = idx[oh, ow, c]
                ih = oh * P["stride_h"] + t // P["k_w"] - P["pad_top"]
                iw = ow * P["stride_w"] + t % P["k_w"] - P["pad_left"]
                if 0 <= ih < H and 0 <= iw < W:
                    dx[ih, iw, c] += dy[oh, ow, c]
    return dx


def avgpool_igrad_ref(P, dy, count_include_pad):
    """Adjoint of avgpool_ref, built as a dense matrix (small sizes only)."""
    H, W, C = P["in_h"], P["in_w"], P["c"]
    n_in = H * W
    A = np.zeros((P["out_h"] * P["out_w"], n_in))
    for i in range(n_in):
        e = np.zeros((H, W, 1))
        e.reshape(-1)[i] = 1.0
        A[:, i] = avgpool_ref(P, e, count_include_pad).reshape(-1)
    dy = np.asarray(dy, np.float64).reshape(-1, C)
    return (A.T @ dy).reshape(H, W, C)


# ---------------------------------------------------------------- onnxruntime


def ort_run(node, inputs, initializers=(), opset=17):
    """Run one ONNX node. inputs: list of (name, ndarray) fed at run time;
    initializers: (name, ndarray) constants. Output name must be 'y'."""

    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in inputs]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers]
    graph = helper.make_graph([node], "single_op", ins, [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(["y"], {n: np.asarray(a, np.float32) for n, a in inputs})[0]


def nhwc_to_nchw(x):
    return np.ascontiguousarray(np.asarray(x).transpose(2, 0, 1)[None])


def nchw_to_nhwc(x):
    return np.ascontiguousarray(np.asarray(x)[0].transpose(1, 2, 0))
