"""ONNX import: every supported op, folding, and agreement with onnxruntime."""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
from onnx import numpy_helper

from ir_models import M, mcunet_style, mobilenetv2_style
from medyate.ir.graph import CANONICAL_OPS
from medyate.ir.onnx_import import load_onnx


def ops(g):
    return Counter(n.op for n in g.nodes)


def assert_canonical(g):
    assert all(n.op in CANONICAL_OPS for n in g.nodes)
    for n in g.nodes:
        for t in n.inputs + n.outputs:
            assert t in g.shapes and g.shapes[t][0] == 1
        if n.op == "Conv":
            O, Ig, kh, kw = n.params["weight"].shape
            assert n.params["bias"].shape == (O,)
            assert n.attrs["kernel"] == (kh, kw) and len(n.attrs["pads"]) == 4
            assert n.params["weight"].dtype == np.float32
        if n.op == "Gemm":
            O, I = n.params["weight"].shape
            assert n.params["bias"].shape == (O,)
            assert g.shapes[n.inputs[0]] == (1, I) and g.shapes[n.outputs[0]] == (1, O)


# ----------------------------------------------------------------- whole models

def test_mobilenetv2_style(save, check_ort):
    g = check_ort(save(mobilenetv2_style()))
    assert_canonical(g)
    c = ops(g)
    assert "BatchNormalization" not in c and c["Conv"] == 16 and c["Clip"] == 11
    assert c["Add"] == 2 and c["Softmax"] == 1 and c["Gemm"] == 1
    assert sum(n.is_depthwise for n in g.nodes) == 5
    assert g.node("b2_dw").attrs["group"] == 72
    assert g.node("classifier").params["weight"].shape == (10, 64)
    assert g.shapes[g.input] == (1, 3, 32, 32)          # dynamic batch -> 1
    assert g.nodes[-1].op == "Softmax" and g.nodes[-1].outputs == [g.output]


def test_mcunet_style(save, check_ort):
    g = check_ort(save(mcunet_style()))
    assert_canonical(g)
    c = ops(g)
    # stem + expand and depthwise of 5 blocks, every HardSwish form recognised
    assert c["HardSwish"] == 11
    assert c["Mul"] == 5 and c["HardSigmoid"] == 5
    assert {n.attrs["kernel"] for n in g.nodes if n.is_depthwise} == {(3, 3), (5, 5), (7, 7)}
    assert g.node("b4_dw3x3").attrs["strides"] == (2, 1)
    for n in g.nodes:
        if n.op == "Mul":    # canonical (x, s) order, whichever order the file used
            x, s = (g.shapes[t] for t in n.inputs)
            assert s == (1, x[1], 1, 1) and x[2:] != (1, 1)
    assert g.node("fc").op == "Gemm" and g.node("fc").params["weight"].shape == (10, 192)
    assert "fc_bias" not in [n.name for n in g.nodes]    # bias Add fused into the Gemm
    assert g.output == "logits"
    assert c["Reshape"] == 1       # Shape/Gather/Unsqueeze/Concat folded


@pytest.mark.parametrize("fname", ["torch_tiny.onnx", "torch_tiny_const.onnx"])
def test_torch_exported(fname, fixtures_dir, check_ort):
    import onnx
    path = f"{fixtures_dir}/{fname}"
    raw = onnx.load(path)
    raw_ops = Counter(n.op_type for n in raw.graph.node)
    if fname == "torch_tiny_const.onnx":
        assert not raw.graph.initializer and raw_ops["Constant"] > 20
    assert raw_ops["BatchNormalization"] == 7 and raw_ops["Shape"] == 1
    g = check_ort(path)
    assert_canonical(g)
    c = ops(g)
    assert c["HardSwish"] == 2 and c["Mul"] == 2 and c["Conv"] == 12
    assert c["MaxPool"] == 1 and c["AveragePool"] == 1 and c["Gemm"] == 1
    assert g.input == "input" and g.output == "logits"
    raw_names = {n.name for n in raw.graph.node}
    assert all(n.name in raw_names for n in g.nodes)    # names map back to the file
    with open(path, "rb") as f:
        assert g.source_sha256 == hashlib.sha256(f.read()).hexdigest()


def test_both_torch_fixtures_give_same_weights(fixtures_dir):
    a = load_onnx(f"{fixtures_dir}/torch_tiny.onnx")
    b = load_onnx(f"{fixtures_dir}/torch_tiny_const.onnx")
    assert [n.name for n in a.nodes] == [n.name for n in b.nodes]
    for na, nb in zip(a.nodes, b.nodes):
        for k in na.params:
            np.testing.assert_array_equal(na.params[k], nb.params[k])


# ----------------------------------------------------------------- Conv variants

@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7])
def test_conv_kernels(k, save, check_ort):
    m = M((1, 3, 11, 9))
    g = check_ort(save(m.model(m.conv("x", 3, 4, k, pads=[k // 2, 0, (k - 1) // 2, 1]))))
    (n,) = g.nodes
    assert n.attrs["kernel"] == (k, k)
    assert n.attrs["pads"] == (k // 2, 0, (k - 1) // 2, 1)   # (top, left, bottom, right)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("stride", [1, 2, (2, 1)])
def test_conv_auto_pad(auto_pad, stride, save, check_ort):
    m = M((1, 2, 8, 7))
    g = check_ort(save(m.model(m.conv("x", 2, 3, (4, 3), stride=stride, auto_pad=auto_pad))))
    n = g.nodes[0]
    if auto_pad == "VALID":
        assert n.attrs["pads"] == (0, 0, 0, 0)
    else:
        assert sum(n.attrs["pads"]) > 0
    if stride == 1 and auto_pad == "SAME_UPPER":
        assert n.attrs["pads"] == (1, 1, 2, 1)
    if stride == 1 and auto_pad == "SAME_LOWER":
        assert n.attrs["pads"] == (2, 1, 1, 1)


def test_conv_variants(save, check_ort):
    m = M((1, 4, 9, 9))
    y = m.conv("x", 4, 8, 1, name="pointwise", bias=False)            # no bias -> zeros
    y = m.conv(y, 8, 16, 3, group=8, name="dw_mult2")                 # depthwise, m=2
    y = m.conv(y, 16, 6, (3, 5), stride=(2, 1), name="rect")          # per-axis stride
    g = check_ort(save(m.model(y)))
    pw, dw, rect = g.nodes
    assert not pw.is_depthwise and np.all(pw.params["bias"] == 0)
    assert dw.is_depthwise and dw.params["weight"].shape == (16, 1, 3, 3)
    assert rect.attrs["strides"] == (2, 1) and rect.attrs["kernel"] == (3, 5)
    assert g.shapes[rect.outputs[0]] == (1, 6, 5, 9)


def test_bn_folding_and_standalone_bn(save, check_ort):
    m = M((1, 3, 8, 8))
    a = m.bn(m.conv("x", 3, 4, 3, name="c1"), 4, name="bn_folded")
    b = m.conv("x", 3, 4, 3, name="c2")
    s = m.node("Add", [a, b], name="add")
    y = m.bn(s, 4, name="bn_alone")          # no conv before it: becomes a 1x1 depthwise
    g = check_ort(save(m.model(y)))
    names = [n.name for n in g.nodes]
    assert "bn_folded" not in names and "BatchNormalization" not in ops(g)
    alone = g.node("bn_alone")
    assert alone.op == "Conv" and alone.is_depthwise and alone.attrs["kernel"] == (1, 1)


def test_constant_node_weights_and_folded_subgraphs(save, check_ort):
    m = M((1, 3, 6, 6))
    rng = np.random.default_rng(3)
    # weight stored transposed and as float64, restored by Transpose + Cast
    w = m.const_node(rng.normal(size=(5, 3, 3, 3)).transpose(3, 2, 1, 0).copy(),
                     dtype=np.float64)
    w = m.node("Cast", [m.node("Transpose", [w], perm=[3, 2, 1, 0])], to=1)
    # bias = ConstantOfShape([5]) * 0.5 + arange-like constant
    shape5 = m.const_node([5], dtype=np.int64)
    bias = m.node("ConstantOfShape", [shape5],
                  value=numpy_helper.from_array(np.array([0.5], np.float32)))
    bias = m.node("Add", [bias, m.const_node(np.arange(5) * 0.1)])
    y = m.node("Conv", ["x", w, bias], name="conv_const", pads=[1, 1, 1, 1])
    # Reshape target computed from Shape/Slice/Concat
    shp = m.node("Shape", [y])
    hw = m.node("Slice", [shp, m.init([2], dtype=np.int64), m.init([4], dtype=np.int64)])
    prod = m.node("ReduceProd", [hw], keepdims=1)
    tgt = m.node("Concat", [m.init([1, 5], dtype=np.int64), prod], axis=0)
    y = m.node("Reshape", [y, tgt], name="reshape")
    y = m.node("Unsqueeze", [y, m.init([3], dtype=np.int64)], name="unsq")
    g = check_ort(save(m.model(y)))
    assert [n.op for n in g.nodes] == ["Conv", "Reshape", "Reshape"]
    conv = g.node("conv_const")
    np.testing.assert_allclose(conv.params["bias"], 0.5 + np.arange(5) * 0.1, rtol=1e-6)
    assert g.shapes[g.node("reshape").outputs[0]] == (1, 5, 36)
    assert g.shapes[g.output] == (1, 5, 36, 1)


# ----------------------------------------------------------------- Gemm / MatMul

@pytest.mark.parametrize("transB", [0, 1])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0)])
def test_gemm(transB, alpha, beta, save, check_ort):
    m = M((1, 12))
    w = m.w((5, 12) if transB else (12, 5))
    y = m.node("Gemm", ["x", w, m.w((5,), 1.0)], name="fc", transB=transB, alpha=alpha,
               beta=beta)
    g = check_ort(save(m.model(y)))
    (n,) = g.nodes
    assert n.op == "Gemm" and n.params["weight"].shape == (5, 12)


def test_gemm_transA_and_no_bias(save, check_ort):
    m = M((1, 2, 3, 2))
    x = m.node("Reshape", ["x", m.init([12, 1], dtype=np.int64)])
    y = m.node("Gemm", [x, m.w((12, 4))], name="fcT", transA=1)
    g = check_ort(save(m.model(y)))
    assert [n.op for n in g.nodes] == ["Reshape", "Reshape", "Gemm"]
    assert np.all(g.node("fcT").params["bias"] == 0)


def test_matmul_add_bias_either_order(save, check_ort):
    m = M((1, 2, 2, 2))
    x = m.node("Flatten", ["x"], axis=1)
    y = m.node("MatMul", [x, m.w((8, 6))], name="mm")
    y = m.node("Add", [m.w((1, 6), 1.0), y], name="bias")
    y = m.node("Relu", [y])
    y = m.node("MatMul", [y, m.w((6, 3))], name="mm2")
    g = check_ort(save(m.model(y)))
    assert [n.op for n in g.nodes] == ["Flatten", "Gemm", "Relu", "Gemm"]
    assert g.node("mm").params["weight"].shape == (6, 8)


def test_affine_constants_fold_into_conv(save, check_ort):
    m = M((1, 3, 5, 5))
    y = m.conv("x", 3, 4, 3, name="c")
    y = m.node("Mul", [y, m.w((1, 4, 1, 1), 1.0)])
    y = m.node("Sub", [y, m.init(0.25)])
    y = m.node("Div", [y, m.w((4, 1, 1), 1.0)])
    g = check_ort(save(m.model(y)))
    assert [n.name for n in g.nodes] == ["c"]


# ----------------------------------------------------------------- activations

def test_clip_bounds_from_inputs(save, check_ort):
    m = M((1, 2, 4, 4))
    a = m.node("Clip", ["x", m.init(-1.0), m.init(2.5)], name="both")
    b = m.node("Clip", [a, m.init(0.0)], name="relu_like")       # min only -> Relu
    c = m.node("Clip", [b, "", m.init(1.5)], name="max_only")
    g = check_ort(save(m.model(c)))
    assert g.node("both").attrs == {"min": -1.0, "max": 2.5}
    assert g.node("relu_like").op == "Relu"
    assert g.node("max_only").attrs == {"min": -np.inf, "max": 1.5}


def test_clip_bounds_from_attributes_opset10(save, check_ort):
    m = M((1, 2, 4, 4), opset=10)
    y = m.node("Clip", ["x"], name="relu6", min=0.0, max=6.0)
    y = m.node("Relu", [y], name="relu")
    g = check_ort(save(m.model(y)))
    assert g.node("relu6").op == "Clip" and g.node("relu6").attrs == {"min": 0.0, "max": 6.0}
    assert g.node("relu").op == "Relu"


@pytest.mark.parametrize("variant", ["op", "hardsigmoid", "div_after_mul",
                                     "mul_sixth_after_mul", "div_first", "mul_sixth_first"])
def test_hardswish_forms(variant, save, check_ort):
    m = M((1, 3, 5, 5))
    y = m.hswish(m.conv("x", 3, 4, 3), variant)
    g = check_ort(save(m.model(y)))
    assert [n.op for n in g.nodes] == ["Conv", "HardSwish"]
    assert g.nodes[-1].outputs == [g.output]


def test_hardsigmoid_forms(save, check_ort):
    m = M((1, 3, 5, 5))
    a = m.node("HardSigmoid", ["x"], name="hsig", alpha=0.3, beta=0.4)
    c = m.relu6(m.node("Add", [a, m.init(3.0)]))
    b = m.node("Div", [c, m.init(6.0)], name="hsig_pattern")   # relu6(x + 3) / 6
    g = check_ort(save(m.model(b)))
    assert [n.op for n in g.nodes] == ["HardSigmoid", "HardSigmoid"]
    assert g.node("hsig").attrs == pytest.approx({"alpha": 0.3, "beta": 0.4})
    assert g.node("hsig_pattern").attrs == pytest.approx({"alpha": 1 / 6, "beta": 0.5})


def test_relu_not_fused_when_intermediate_reused(save, check_ort):
    # the Clip(x + 3) output also feeds the graph elsewhere: no fusion, and then the
    # constant Add cannot be lowered -> error rather than wrong math
    from medyate.errors import MedyateError
    m = M((1, 3, 5, 5))
    x = m.conv("x", 3, 4, 3)
    c = m.relu6(m.node("Add", [x, m.init(3.0)], name="plus3"))
    y = m.node("Div", [m.node("Mul", [x, c]), m.init(6.0)])
    y = m.node("Add", [y, c])
    with pytest.raises(MedyateError, match="plus3"):
        load_onnx(save(m.model(y)))


# ----------------------------------------------------------------- pooling, shapes

@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_pooling(count_include_pad, save, check_ort):
    m = M((1, 3, 9, 8))
    a = m.node("AveragePool", ["x"], name="avg", kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1], count_include_pad=count_include_pad)
    b = m.node("MaxPool", [a], name="max", kernel_shape=[2, 3], strides=[1, 2],
               pads=[0, 1, 1, 1])
    c = m.node("MaxPool", [b], name="max_same", kernel_shape=[2, 2], auto_pad="SAME_UPPER")
    d = m.node("GlobalAveragePool", [c], name="gap")
    g = check_ort(save(m.model(d)))
    assert g.node("avg").attrs == {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1),
                                   "count_include_pad": count_include_pad}
    assert g.node("max").attrs["pads"] == (0, 1, 1, 1)
    assert g.shapes[g.output] == (1, 3, 1, 1)


def test_concat_flatten_reshape_softmax(save, check_ort):
    m = M((1, 3, 6, 6))
    a = m.conv("x", 3, 4, 3, name="left")
    b = m.conv("x", 3, 2, 1, name="right")
    c = m.node("Concat", [a, b], name="cat", axis=-3)
    f = m.node("Flatten", [m.node("GlobalAveragePool", [c])], name="flat")
    r = m.node("Reshape", [f, m.init([1, 6], dtype=np.int64)], name="resh")
    s = m.node("Softmax", [m.node("Gemm", [r, m.w((6, 4))])], name="sm", axis=1)
    s = m.node("Dropout", [s])                 # still the output once removed
    g = check_ort(save(m.model(s, out_name="probs")))
    assert g.output == "probs" and g.nodes[-1].outputs == ["probs"]
    assert g.node("cat").attrs["axis"] == 1
    assert g.node("flat").attrs["shape"] == (1, 6)
    assert g.node("sm").attrs["axis"] == 1


def test_identity_dropout_removed_names_kept(save, check_ort):
    m = M((1, 3, 6, 6))
    y = m.node("Identity", ["x"])
    y = m.conv(y, 3, 4, 3, name="")            # empty name -> generated
    y, _mask = m.node("Dropout", [y], n_out=2)
    y = m.node("Relu", [y], name="act")
    g = check_ort(save(m.model(y, out_name="final")))
    assert [n.op for n in g.nodes] == ["Conv", "Relu"]
    assert g.nodes[0].name == "Conv_1"          # "<op>_<index in the file>"
    assert g.nodes[0].inputs == [g.input]
    assert g.output == "final" and g.nodes[-1].outputs == ["final"]


# ----------------------------------------------------------------- shapes

def test_dynamic_dims_with_input_shape(save, check_ort):
    m = M((1, 3, 16, 16))
    m.input.type.tensor_type.shape.dim[2].dim_param = "H"
    m.input.type.tensor_type.shape.dim[3].dim_param = "W"
    y = m.node("GlobalAveragePool", [m.conv("x", 3, 4, 3, stride=2)])
    path = save(m.model(y))
    g = check_ort(path, input_shape=(1, 3, 10, 12))
    assert g.shapes[g.input] == (1, 3, 10, 12)
    assert g.shapes[g.nodes[0].outputs[0]] == (1, 4, 5, 6)
    g2 = load_onnx(path, (3, 8, 8))                     # C,H,W also accepted
    assert g2.shapes[g2.input] == (1, 3, 8, 8)


def test_static_batch_other_than_one_becomes_one(save):
    m = M((4, 3, 8, 8), batch=None)
    g = load_onnx(save(m.model(m.node("Relu", ["x"]))))
    assert g.shapes[g.input] == (1, 3, 8, 8)


def test_initializers_listed_as_inputs(save, check_ort):
    """keep_initializers_as_inputs=True exports: weights are graph inputs with defaults."""
    from onnx import helper
    m = M((1, 3, 6, 6))
    y = m.node("Relu", [m.bn(m.conv("x", 3, 4, 3, name="c"), 4)])
    model = m.model(y)
    for t in model.graph.initializer:
        model.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, t.dims))
    g = check_ort(save(model))
    assert g.input == "x" and [n.op for n in g.nodes] == ["Conv", "Relu"]
