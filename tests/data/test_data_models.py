"""The committed pre-trained models: they load, have the documented shape and size, fit
the microcontroller budget, import into the IR, and really learned the source task."""
import numpy as np
import pytest

from medyate.data import (INPUT_SHAPE, bundled_model, check_task,
                          load_task, model_summary, source_task)
from medyate.data.models import REAL_MODELS, TINY_MODELS
from medyate.errors import MedyateError

ort = pytest.importorskip("onnxruntime")

# documented in models/README.md; ranges rather than exact figures so that a retrained
# model with the same architecture passes
SIZE = {"mbv2-tiny": dict(params=(25_000, 26_000), macs=(650_000, 700_000), convs=15),
        "mcunet-tiny": dict(params=(30_500, 31_500), macs=(760_000, 800_000), convs=16)}
# source task: 5 classes, chance 20 %; the committed models reach about 91 %
MIN_SOURCE_ACCURACY = 0.85


@pytest.fixture(scope="module")
def source_test():
    t = source_task(seed=0, n_train=10, n_test=500)
    return t.x_test, t.y_test


def _session(name):
    return ort.InferenceSession(str(bundled_model(name)), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", TINY_MODELS)
def test_io_names_and_shapes(name):
    s = _session(name)
    (i,), (o,) = s.get_inputs(), s.get_outputs()
    assert i.name == "input" and o.name == "logits"
    assert tuple(i.shape[1:]) == INPUT_SHAPE[1:]
    assert o.shape[1] == 10
    y = s.run(None, {"input": np.zeros((3,) + INPUT_SHAPE[1:], np.float32)})[0]
    assert y.shape == (3, 10)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_size_and_memory_budget(name):
    s = model_summary(bundled_model(name))
    lim = SIZE[name]
    assert lim["params"][0] <= s["params"] <= lim["params"][1] <= 40_000
    assert 500_000 <= lim["macs"][0] <= s["macs"] <= lim["macs"][1] <= 2_500_000
    assert s["conv_layers"] == lim["convs"]
    assert s["largest_activation"] * 4 <= 16 * 1024
    assert s["max_op_io"] * 4 <= 48 * 1024 and s["peak_live"] * 4 <= 48 * 1024
    assert set(s["ops"]) <= {"Conv", "Clip", "Constant", "Add", "GlobalAveragePool",
                             "Flatten", "Gemm"}


@pytest.mark.parametrize("name", TINY_MODELS)
def test_source_accuracy_with_onnxruntime(name, source_test):
    x, y = source_test
    logits = _session(name).run(["logits"], {"input": x})[0]
    acc = float((logits.argmax(1) == y).mean())
    assert acc >= MIN_SOURCE_ACCURACY, f"{name}: {acc:.3f} on the source test split"


@pytest.mark.parametrize("name", TINY_MODELS)
def test_imports_into_ir_and_matches_onnxruntime(name, source_test):
    from medyate.ir.onnx_import import load_onnx
    from medyate.ir.reference import evaluate
    g = load_onnx(bundled_model(name))
    assert g.shapes[g.input] == INPUT_SHAPE
    x = source_test[0][:2]
    want = _session(name).run(["logits"], {"input": x})[0]
    for i in range(2):
        np.testing.assert_allclose(evaluate(g, x[i:i + 1]), want[i:i + 1], atol=1e-4)
    assert sum(1 for n in g.nodes if n.op == "Conv") == SIZE[name]["convs"]


# models/README.md, second table: conv layers including the classifier
REAL_CONVS = {"mcunet-5fps": 43, "mbv2-w0.35": 52, "proxyless-w0.3": 61}


@pytest.mark.parametrize("name", REAL_MODELS)
def test_summary_of_the_qdq_models(name):
    # weights sit behind DequantizeLinear: they count as parameters, not activations
    s = model_summary(bundled_model(name))
    assert s["conv_layers"] == REAL_CONVS[name]
    assert s["input_shape"] == (1, 3, 128, 128) and s["output_shape"] == (1, 1000)
    assert 300_000 <= s["params"] <= 700_000
    assert not s["largest_activation_tensor"].endswith(".dq")
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= set(s["ops"])


def test_builtin_tasks_fit_the_models():
    for task in ("fmnist-5to9", "digits", "fmnist-inv"):
        check_task(load_task(task, n_train=10, n_test=10), INPUT_SHAPE, n_outputs=10)


def test_unknown_bundled_model():
    with pytest.raises(MedyateError, match="bundled models are mbv2-tiny, mcunet-tiny"):
        bundled_model("resnet")
