"""Every error path of the import: one clear MedyateError, with what to fix."""
from __future__ import annotations

import numpy as np
import pytest

from ir_models import M, mobilenetv2_style
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx


def test_unsupported_nodes_listed_together(save):
    m = M((1, 3, 8, 8))
    y = m.conv("x", 3, 4, 3, name="conv")
    y = m.node("Sigmoid", [y], name="my_sigmoid")
    y = m.node("Transpose", [y], name="my_transpose", perm=[0, 1, 3, 2])
    y = m.node("LeakyRelu", [y], name="")            # unnamed: generated name
    with pytest.raises(MedyateError) as ei:
        load_onnx(save(m.model(y)))
    msg = str(ei.value)
    assert "3 unsupported node(s)" in msg
    assert "my_sigmoid (Sigmoid)" in msg
    assert "my_transpose (Transpose)" in msg
    assert "LeakyRelu_3 (LeakyRelu)" in msg
    assert "conv" not in msg.split("unsupported node(s)")[1].split("\n", 1)[1]


def test_custom_domain_op_reported(save):
    from onnx import helper
    m = M((1, 3, 8, 8))
    m.nodes.append(helper.make_node("FancyOp", ["x"], ["f"], name="fancy", domain="com.acme"))
    model = m.model("f")
    model.opset_import.append(helper.make_opsetid("com.acme", 1))
    with pytest.raises(MedyateError, match=r"fancy \(com\.acme\.FancyOp\)"):
        load_onnx(save(model))


def test_conv_restrictions_listed_together(save):
    m = M((1, 8, 12, 12))
    a = m.conv("x", 8, 8, 3, group=2, name="grouped")
    b = m.conv(a, 8, 8, 3, name="dilated", dilations=[2, 2], pads=[2, 2, 2, 2])
    c = m.conv(b, 8, 8, 9, name="huge")
    with pytest.raises(MedyateError) as ei:
        load_onnx(save(m.model(c)))
    msg = str(ei.value)
    assert "3 unsupported node(s)" in msg
    assert "grouped (Conv): grouped convolution with group=2 on 8 channels" in msg
    assert "dilated (Conv): dilation [2, 2]" in msg
    assert "huge (Conv): kernel 9x9" in msg


def test_lowering_problems_listed_together(save):
    m = M((1, 4, 6, 6))
    a = m.conv("x", 4, 4, 3)
    b = m.conv("x", 4, 4, 3)
    mul = m.node("Mul", [a, b], name="elementwise_mul")
    sm = m.node("Softmax", [mul], name="inner_softmax", axis=1)
    add = m.node("Add", [sm, m.node("GlobalAveragePool", [a])], name="bcast_add")
    with pytest.raises(MedyateError) as ei:
        load_onnx(save(m.model(add)))
    msg = str(ei.value)
    assert "3 unsupported node(s)" in msg
    assert "inner_softmax (Softmax): Softmax is only supported as the graph's output" in msg
    assert "elementwise_mul (Mul): only per-channel broadcast" in msg
    assert "bcast_add (Add): only same-shape Add" in msg


def test_not_onnx(tmp_path):
    p = tmp_path / "notes.onnx"
    p.write_text("this is a text file, not a model\n" * 10)
    with pytest.raises(MedyateError, match="not a valid ONNX model|not an ONNX model"):
        load_onnx(p)
    e = tmp_path / "empty.onnx"
    e.write_bytes(b"")
    with pytest.raises(MedyateError, match="is empty: not an ONNX model"):
        load_onnx(e)
    with pytest.raises(MedyateError, match="cannot read model file"):
        load_onnx(tmp_path / "missing.onnx")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated(fraction, save, tmp_path):
    data = open(save(mobilenetv2_style()), "rb").read()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(MedyateError, match="truncated"):
        load_onnx(p)


def test_missing_input_shape_names_the_input(save):
    m = M((1, 3, 16, 16), input_name="image")
    m.input.type.tensor_type.shape.dim[2].dim_param = "height"
    path = save(m.model(m.node("Relu", ["image"])))
    with pytest.raises(MedyateError) as ei:
        load_onnx(path)
    msg = str(ei.value)
    assert "input 'image' has dynamic dimension(s) [2]" in msg and "--input-shape" in msg
    assert "[batch" not in msg and "height" in msg


def test_input_without_shape(save):
    from onnx import TensorProto, helper
    m = M((1, 3, 4, 4))
    m.input = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    with pytest.raises(MedyateError, match="input 'x' has no shape.*--input-shape"):
        load_onnx(save(m.model(m.node("Relu", ["x"]))))


def test_bad_input_shapes(save):
    m = M((1, 3, 8, 8))
    path = save(m.model(m.node("Relu", ["x"])))
    with pytest.raises(MedyateError, match="has rank 2 but input 'x' has rank 4"):
        load_onnx(path, (8, 8))
    with pytest.raises(MedyateError, match="batch dimension must be 1"):
        load_onnx(path, (2, 3, 8, 8))
    with pytest.raises(MedyateError, match=r"contradicts the static shape.*\[1\]"):
        load_onnx(path, (1, 4, 8, 8))


def test_two_inputs_or_outputs(save):
    from onnx import TensorProto, helper
    m = M((1, 3, 4, 4))
    y = m.node("Relu", ["x"])
    model = m.model(y)
    model.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1]))
    with pytest.raises(MedyateError, match=r"exactly one input tensor, it has 2 \(x, mask\)"):
        load_onnx(save(model))
    m = M((1, 3, 4, 4))
    y = m.node("Relu", ["x"])
    z = m.node("Relu", [y])
    model = m.model(z)
    model.graph.output.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, None))
    with pytest.raises(MedyateError, match="exactly one output"):
        load_onnx(save(model))


def test_non_float_input(save):
    from onnx import TensorProto, helper
    m = M((1, 3, 4, 4))
    m.input = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 4, 4])
    with pytest.raises(MedyateError, match="element type UINT8; only float32"):
        load_onnx(save(m.model(m.node("Relu", ["x"]))))


def test_constant_weights_required(save):
    m = M((1, 3, 4, 4))
    w = m.node("Relu", [m.node("Reshape", ["x", m.init([3, 1, 4, 4], dtype=np.int64)])])
    y = m.node("Conv", ["x", w], name="data_weights", group=3)
    with pytest.raises(MedyateError, match="data_weights \\(Conv\\): only convolutions with "
                                           "constant weights"):
        load_onnx(save(m.model(y)))
