"""Malformed ONNX files: a cycle, a huge input dimension, a weight of the
wrong element type. Each is one MedyateError naming what is wrong (the
truncated and non-ONNX cases live in tests/ir/test_ir_errors.py)."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T, helper as h, numpy_helper as nh

from medyate.errors import MedyateError
from medyate.ir.onnx_import import MAX_INPUT_ELEMENTS, load_onnx


def _model(nodes, in_shape, inits=()):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, in_shape)],
                     [h.make_tensor_value_info("y", T.FLOAT, None)], list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", 13)])


W = nh.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
CASES = {
    "cycle": (_model([h.make_node("Relu", ["b"], ["a"], name="r1"),
                      h.make_node("Add", ["x", "a"], ["b"], name="add"),
                      h.make_node("Relu", ["b"], ["y"], name="r2")], [1, 3, 8, 8]),
              "not acyclic"),
    "huge dims": (_model([h.make_node("Conv", ["x", "w"], ["y"], name="conv")],
                         [1, 3, 100000, 100000], [W]),
                  rf"input 'x' has shape \(1, 3, 100000, 100000\), more than "
                  rf"{MAX_INPUT_ELEMENTS} elements"),
    "float64 weight": (_model([h.make_node("Conv", ["x", "w"], ["y"], name="conv")], [1, 3, 8, 8],
                              [nh.from_array(np.ones((4, 3, 3, 3), np.float64), "w")]),
                       r"node \(conv\)"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_onnx_is_one_clear_error(name, tmp_path):
    model, msg = CASES[name]
    p = tmp_path / "m.onnx"
    onnx.save(model, str(p))
    with pytest.raises(MedyateError, match=msg):
        load_onnx(str(p))
    assert [f.name for f in tmp_path.iterdir()] == ["m.onnx"]      # nothing else written
