"""A model with dynamic H and W: `plan` takes them from the data when the data
has a shape of its own (an .npz) and records the shape in plan.json, so `train`
needs no --input-shape; an image folder, which has no shape of its own, still
asks for --input-shape."""
import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from medyate.cli import main


def _dynamic_model(path):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    fw = numpy_helper.from_array(rng.normal(0, 0.3, (3, 4)).astype(np.float32), "fw")
    fb = numpy_helper.from_array(np.zeros(3, np.float32), "fb")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="fc")]
    g = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w, b, fw, fb])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _npz(path, h=12, w=10):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (24, 1, h, w)).astype(np.float32)
    y = np.arange(24) % 3
    np.savez(path, x_train=x[:18], y_train=y[:18], x_test=x[18:], y_test=y[18:])


def test_shape_from_the_data_and_kept_in_the_plan(tmp_path, capsys):
    model, data, plan = tmp_path / "dyn.onnx", tmp_path / "d.npz", tmp_path / "plan.json"
    _dynamic_model(model)
    _npz(data)
    assert main(["plan", str(model), "--data", str(data), "--elements", "200",
                 "--ranking-samples", "8", "--epochs", "1", "--lr", "0.01",
                 "--out", str(plan)]) == 0
    assert "taken from the data" in capsys.readouterr().out
    assert json.loads(plan.read_text())["input_shape"] == [1, 1, 12, 10]
    # train: neither --input-shape nor anything else about the shape
    assert main(["train", str(model), "--plan", str(plan), "--data", str(data),
                 "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "finetuned.onnx").is_file()


def test_a_folder_has_no_shape_of_its_own(tmp_path, capsys):
    model = tmp_path / "dyn.onnx"
    _dynamic_model(model)
    folder = tmp_path / "imgs"
    for split in ("train", "test"):
        for c in "ab":
            (folder / split / c).mkdir(parents=True)
            (folder / split / c / "0.pgm").write_bytes(b"P5\n4 4\n255\n" + bytes(16))
    assert main(["plan", str(model), "--data", str(folder), "--elements", "200",
                 "--out", str(tmp_path / "plan.json")]) != 0
    assert "--input-shape" in capsys.readouterr().err
    assert not (tmp_path / "plan.json").exists()
