"""Quantized ONNX -> IR: QDQ and QLinear* import with their parameters, the float view,
onnxruntime's quantize_static on user data, and the errors for what int8 cannot run."""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import tte_reference as R
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.ir.quantize import (check_calibration, int8_problems, quantize_model,
                                 require_int8)
from medyate.ir.reference import evaluate
from medyate.ir.tte_import import image_to_input

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "models")


def qdq_session(path):
    """onnxruntime evaluating a QDQ model as ONNX defines it (float ops between Q/DQ)."""
    so = ort.SessionOptions()
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _convs(cfg):
    yield "first_conv", cfg["first_conv"]
    for i, b in enumerate(cfg["blocks"]):
        for part in ("pointwise1", "depthwise", "pointwise2"):
            if b[part] is not None:
                yield f"blocks.{i}.{part}", b[part]
    yield "classifier", cfg["classifier"]


@pytest.mark.parametrize("name", ["mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3"])
def test_tte_qdq_import_carries_the_int8_parameters(name):
    g = load_onnx(os.path.join(MODELS, f"{name}.onnx"))
    cfg = R.load_cfg(os.path.join(MODELS, "tte", f"{name}.pkl"))
    assert g.is_quantized and int8_problems(g) == []
    assert g.quant[g.input].zero_point == 0
    assert g.quant[g.input].scale == pytest.approx(1 / 127.5, rel=1e-7)
    for conv_name, c in _convs(cfg):
        n, p = g.node(conv_name), c["params"]
        assert np.array_equal(n.quant.weight_q, p["weight"]), conv_name
        assert n.quant.weight_q.dtype == np.int8
        assert np.array_equal(n.quant.weight_scale, p["w_scales"]), conv_name
        assert np.array_equal(n.quant.bias_q, p["bias"]), conv_name   # incl. saturated codes
        xq, yq = g.quant[n.inputs[0]], g.output_quant(n)
        assert (xq.scale, xq.zero_point) == (float(np.float32(p["x_scale"])), p["x_zero"])
        assert (yq.scale, yq.zero_point) == (float(np.float32(p["y_scale"])), p["y_zero"])
        # the float view: dequantized weights
        np.testing.assert_array_equal(
            n.params["weight"],
            (p["weight"] * p["w_scales"].reshape(-1, 1, 1, 1)).astype(np.float32))


def test_tte_float_view_and_quantized_reference_against_onnxruntime():
    path = os.path.join(MODELS, "mbv2-w0.35.onnx")
    g = load_onnx(path)
    sess = qdq_session(path)
    cq = g.quant[g.output]
    for _, im in R.sample_images():
        x = image_to_input(im)
        want = sess.run(None, {"input": x})[0]
        got = evaluate(g, x, quantized=True)
        # Same codes but for rounding ties (measured: at most 1 code, 8-10 % of logits).
        codes = np.round(np.stack([got, want]) / cq.scale)
        assert np.abs(codes[0] - codes[1]).max() <= 2
        assert got.argmax() == want.argmax()
        # The float view (no rounding) predicts the same class.
        assert evaluate(g, x).argmax() == want.argmax()


@pytest.fixture(scope="module")
def task():
    from medyate.data import load_task
    return load_task("fmnist-5to9", n_train=64, n_test=50)


@pytest.fixture(scope="module")
def quantized_tiny(task, tmp_path_factory):
    dst = tmp_path_factory.mktemp("q") / "mcunet-tiny-int8.onnx"
    quantize_model(os.path.join(MODELS, "mcunet-tiny.onnx"), dst, task.x_train)
    return str(dst)


def test_quantize_static_on_training_data(quantized_tiny, task):
    m = onnx.load(quantized_tiny)
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 0   # batch dynamic
    g = load_onnx(quantized_tiny)
    gf = load_onnx(os.path.join(MODELS, "mcunet-tiny.onnx"))
    require_int8(g)
    assert all(n.quant is not None and n.quant.weight_q.dtype == np.int8
               for n in g.nodes if n.op in ("Conv", "Gemm"))
    # onnxruntime drops the ReLU6 its Q makes redundant; the float view restores it.
    assert sum(n.op == "Clip" for n in g.nodes) == sum(n.op == "Clip" for n in gf.nodes)
    x = task.x_test
    want = qdq_session(quantized_tiny).run(None, {g.input: x})[0]
    got = np.concatenate([evaluate(g, x[i:i + 1], quantized=True) for i in range(len(x))])
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95
    f, fv = evaluate(gf, x), evaluate(g, x)
    assert (fv.argmax(1) == f.argmax(1)).mean() >= 0.9
    assert np.abs(fv - f).max() <= 0.1 * np.abs(f).max()


def test_calibration_set_checks(task):
    shape = (1, 1, 28, 28)
    with pytest.raises(MedyateError, match="too small: 3 sample"):
        check_calibration(task.x_train[:3], shape)
    with pytest.raises(MedyateError, match="constant"):
        check_calibration(np.repeat(task.x_train[:1], 20, axis=0), shape)
    bad = task.x_train[:20].copy()
    bad[3, 0, 1, 1] = np.nan
    with pytest.raises(MedyateError, match="NaN"):
        check_calibration(bad, shape)
    with pytest.raises(MedyateError, match="does not match"):
        check_calibration(task.x_train[:20, :, :14], shape)


def test_float_model_with_too_few_samples_is_refused(task, tmp_path):
    with pytest.raises(MedyateError, match="too small"):
        quantize_model(os.path.join(MODELS, "mcunet-tiny.onnx"), tmp_path / "q.onnx",
                       task.x_train[:5])
    assert not (tmp_path / "q.onnx").exists()


# ------------------------------------------------------------- hand-built QDQ models

def _qdq_conv_model(w_codes=None, w_zero=None, act_zero=np.int8(0), act_scale=0.05,
                    dq_scale=None, w_scale=None, float_middle=False, opset=13):
    """input [1,3,8,8] -> Q -> DQ -> Conv 3x3 (DQ weights, DQ int32 bias) -> Relu -> Q -> DQ
    [-> Conv in float] -> output."""
    rng = np.random.default_rng(0)
    O = 4
    w_codes = rng.integers(-127, 128, (O, 3, 3, 3)).astype(np.int8) if w_codes is None else w_codes
    w_scale = np.full(O, 0.01, np.float32) if w_scale is None else w_scale
    w_zero = np.zeros(O, w_codes.dtype) if w_zero is None else w_zero
    bias = rng.integers(-500, 500, O).astype(np.int32)
    zdt = np.asarray(act_zero).dtype
    inits = [numpy_helper.from_array(np.float32(act_scale), "s"),
             numpy_helper.from_array(np.asarray(act_zero, zdt), "z"),
             numpy_helper.from_array(np.float32(act_scale if dq_scale is None else dq_scale), "s2"),
             numpy_helper.from_array(w_codes, "wq"), numpy_helper.from_array(w_scale, "ws"),
             numpy_helper.from_array(w_zero, "wz"), numpy_helper.from_array(bias, "bq"),
             numpy_helper.from_array((np.float32(act_scale) * w_scale).astype(np.float32), "bs"),
             numpy_helper.from_array(np.zeros(np.shape(w_scale), np.int32), "bz"),
             numpy_helper.from_array(np.float32(0.1), "ys"),
             numpy_helper.from_array(np.asarray(act_zero, zdt), "yz"),
             numpy_helper.from_array(rng.normal(0, 0.2, (2, O, 1, 1)).astype(np.float32), "w2")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "s", "z"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "s2", "z"], ["x"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dq_w", axis=0),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"], name="dq_b", axis=0),
             helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["rq"], name="q_out"),
             helper.make_node("DequantizeLinear", ["rq", "ys", "yz"],
                              ["mid" if float_middle else "output"], name="dq_out")]
    if float_middle:
        nodes.append(helper.make_node("Conv", ["mid", "w2"], ["output"], name="float_conv"))
    oc = 2 if float_middle else O
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [1, 3, 8, 8])], [helper.make_tensor_value_info(
        "output", TensorProto.FLOAT, [1, oc, 8, 8])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_hand_built_qdq_model(save):
    path = save(_qdq_conv_model())
    g = load_onnx(path)
    require_int8(g)
    conv = g.node("conv")
    assert g.quant["input"].scale == pytest.approx(0.05) and g.output_quant(conv).scale == \
        pytest.approx(0.1)
    x = np.random.default_rng(1).normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
    want = qdq_session(path).run(None, {"input": x})[0]
    np.testing.assert_allclose(evaluate(g, x, quantized=True), want, atol=0.1 + 1e-6)
    assert np.mean(np.abs(evaluate(g, x, quantized=True) - want) > 1e-6) < 0.01


def test_uint8_activations_are_the_equivalent_int8(save):
    path = save(_qdq_conv_model(act_zero=np.uint8(128)))
    g = load_onnx(path)
    assert g.quant["input"].zero_point == 0 and g.quant["output"].zero_point == 0
    x = np.random.default_rng(1).normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
    want = qdq_session(path).run(None, {"input": x})[0]
    assert np.abs(evaluate(g, x, quantized=True) - want).max() <= 0.1 + 1e-6


@pytest.mark.parametrize("kwargs, why", [
    (dict(w_codes=np.ones((4, 3, 3, 3), np.uint8)), r"dq_w: uint8 weights"),
    (dict(w_zero=np.full(4, 3, np.int8)), r"dq_w: per-channel asymmetric weights"),
    (dict(w_codes=np.ones((4, 3, 3, 3), np.int8), w_zero=np.int8(5), w_scale=np.float32(0.01)),
     r"dq_w: per-tensor asymmetric weights"),
    (dict(w_codes=np.ones((4, 3, 3, 3), np.int16), w_zero=np.zeros(4, np.int16), opset=21),
     r"int16 \(16-bit\) weights"),
    (dict(act_zero=np.int16(0), opset=21), r"q_in \(QuantizeLinear\): int16 \(16-bit\) activations"),
    (dict(dq_scale=0.07), r"dq_in: reads or writes tensor 'xq' with scale 0.07.*q_in quantized it"),
])
def test_unsupported_quantization_names_node_and_reason(save, kwargs, why):
    with pytest.raises(MedyateError, match=why):
        load_onnx(save(_qdq_conv_model(**kwargs)))


def test_partly_quantized_model_is_refused_for_int8_naming_the_node(save):
    g = load_onnx(save(_qdq_conv_model(float_middle=True)))   # imports: float view works
    probs = int8_problems(g)
    assert any(p.startswith("float_conv (Conv)") and "not int8" in p for p in probs)
    # (its float output is allowed: a head's logits may be fp32, see ir/head.py)
    assert not any("output 'output'" in p for p in probs)
    with pytest.raises(MedyateError, match=r"float_conv \(Conv\)"):
        require_int8(g)
    with pytest.raises(MedyateError, match="not quantized"):
        require_int8(load_onnx(os.path.join(MODELS, "mcunet-tiny.onnx")))


def test_qlinear_conv_and_matmul(save):
    """QOperator form: QLinearConv and QLinearMatMul between QuantizeLinear and
    DequantizeLinear."""
    rng = np.random.default_rng(2)
    wq = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    ws = rng.uniform(0.005, 0.02, 4).astype(np.float32)
    bq = rng.integers(-300, 300, 4).astype(np.int32)
    mq = rng.integers(-127, 128, (64, 5)).astype(np.int8)
    ms = rng.uniform(0.005, 0.02, 5).astype(np.float32)
    C = lambda a, n: numpy_helper.from_array(a, n)  # noqa: E731
    inits = [C(np.float32(0.05), "xs"), C(np.int8(3), "xz"), C(wq, "wq"), C(ws, "ws"),
             C(np.zeros(4, np.int8), "wz"), C(np.float32(0.1), "ys"), C(np.int8(-128), "yz"),
             C(bq, "bq"), C(np.array([1, 64], np.int64), "shape"), C(mq, "mq"), C(ms, "ms"),
             C(np.zeros(5, np.int8), "mz"), C(np.float32(0.2), "os"), C(np.int8(1), "oz")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "xs", "xz"], ["xq"], name="q"),
             helper.make_node("QLinearConv", ["xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz", "bq"],
                              ["cq"], name="qconv", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Reshape", ["cq", "shape"], ["fq"], name="flat"),
             helper.make_node("QLinearMatMul", ["fq", "ys", "yz", "mq", "ms", "mz", "os", "oz"],
                              ["oq"], name="qmm"),
             helper.make_node("DequantizeLinear", ["oq", "os", "oz"], ["output"], name="dq")]
    graph = helper.make_graph(nodes, "qop", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [1, 3, 8, 8])], [helper.make_tensor_value_info(
        "output", TensorProto.FLOAT, [1, 5])], inits)
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    g = load_onnx(path)
    require_int8(g)
    conv, mm = g.node("qconv"), g.node("qmm")
    assert conv.op == "Conv" and mm.op == "Gemm"
    assert np.array_equal(conv.quant.weight_q, wq) and np.array_equal(conv.quant.bias_q, bq)
    assert np.array_equal(mm.quant.weight_q, mq.T) and np.array_equal(mm.quant.weight_scale, ms)
    assert g.output_quant(conv).zero_point == -128
    x = rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = evaluate(g, x, quantized=True)
    assert np.abs(got - want).max() <= 0.2 * 2 + 1e-6          # within 2 output codes


def test_copy_and_with_weights_keep_the_quantization_honest():
    g = load_onnx(os.path.join(MODELS, "mbv2-w0.35.onnx"))
    c = g.copy()
    assert c.quant == g.quant and c.node("classifier").quant.weight_q is not \
        g.node("classifier").quant.weight_q
    n = g.node("classifier")
    t = g.with_weights({"classifier": (n.params["weight"] * 0.5, n.params["bias"])})
    tq = t.node("classifier").quant
    assert tq.weight_q is None and tq.bias_q is None
    assert np.array_equal(tq.weight_scale, n.quant.weight_scale)
    assert n.quant.weight_q is not None                       # the original is untouched


def test_convert_command_quantizes_a_float_model(tmp_path):
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "host"))
    cmd = [sys.executable, "-m", "medyate.cli", "convert",
           os.path.join(MODELS, "mcunet-tiny.onnx"), "-o", str(tmp_path / "q.onnx")]
    r = subprocess.run(cmd + ["--data", "fmnist-5to9", "--calibration-samples", "32"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "calibrated on 32 training samples of fmnist-5to9; 17 int8 layers" in r.stdout
    require_int8(load_onnx(str(tmp_path / "q.onnx")))
    r = subprocess.run(cmd + ["--force"], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "give --data" in r.stderr


# ------------------------------------------------------------- a new head

def test_new_head_for_a_task_with_other_classes():
    from medyate.ir.head import fit_head, find_head
    g = load_onnx(os.path.join(MODELS, "mbv2-w0.35.onnx"))
    said = []
    assert fit_head(g, 1000, log=said.append) is g and said == []
    h = fit_head(g, 5, seed=3, log=said.append)
    assert len(said) == 1 and "1000 outputs and the task 5 classes" in said[0] \
        and "classifier" in said[0] and "seed 3" in said[0]
    head, after = find_head(h)
    assert head.name == "classifier" and [n.op for n in after] == ["Flatten"]
    assert h.shapes[h.output] == (1, 5) and head.params["weight"].shape == (5, 112, 1, 1)
    bound = 1 / np.sqrt(112)
    w = head.params["weight"]
    assert np.abs(w).max() <= bound and w.std() > bound / 4 and not head.params["bias"].any()
    # int8 at once, float weights exactly the int8 values; logits left fp32
    np.testing.assert_array_equal(
        w, (head.quant.weight_q * head.quant.weight_scale.reshape(-1, 1, 1, 1)).astype(np.float32))
    assert h.output not in h.quant and int8_problems(h) == []
    # the rest untouched, the original untouched, the new graph runs
    assert g.shapes[g.output] == (1, 1000) and g.node("classifier").params["weight"].shape[0] == 1000
    assert np.array_equal(h.node("first_conv").quant.weight_q, g.node("first_conv").quant.weight_q)
    x = np.zeros((1, 3, 128, 128), np.float32)
    assert evaluate(h, x).shape == (1, 5) and evaluate(h, x, quantized=True).shape == (1, 5)
    # seeded
    np.testing.assert_array_equal(fit_head(g, 5, seed=3, log=None).node("classifier")
                                  .params["weight"], w)


def test_new_head_on_a_float_model_and_a_model_without_one():
    from medyate.ir.head import fit_head
    g = load_onnx(os.path.join(MODELS, "mcunet-tiny.onnx"))
    h = fit_head(g, 3, log=None)
    head = h.producer(h.output)
    assert head.op == "Gemm" and head.params["weight"].shape == (3, g.node(head.name)
                                                                 .params["weight"].shape[1])
    assert head.quant is None and not h.is_quantized
    assert evaluate(h, np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 3)
    g.nodes[-1].op = "Relu"     # output no longer written by a Conv/Gemm
    with pytest.raises(MedyateError, match="cannot find the classifier head"):
        fit_head(g, 3, log=None)
