"""`medyate infer` takes a batch of any size, whatever batch the model
declares (static 1, static 4, or symbolic), and gives onnxruntime's output
for every sample; a bundled model is named as in the other commands."""
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from medyate.cli import main
from medyate.data import bundled_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ir"))
from ir_models import M  # noqa: E402


def _model(path, batch):
    """conv, ReLU, global pool, a Gemm. With a static batch of 1 the flattening
    is a Reshape to [1, 4], as exporters with a fixed batch write it (a model
    onnxruntime runs only one sample at a time); otherwise a Flatten."""
    m = M((batch if batch else 1, 3, 8, 8), opset=17, batch=None if batch else "N")
    y = m.node("GlobalAveragePool", [m.node("Relu", [m.conv("x", 3, 4, 3)])])
    if batch == 1:
        y = m.node("Reshape", [y, m.init([1, 4], dtype=np.int64)])
    else:
        y = m.node("Flatten", [y])
    onnx.save(m.model(m.node("Gemm", [y, m.w((4, 3))])), str(path))
    return path


def _reference(path, x, batch):
    """onnxruntime's output sample by sample, in chunks of the model's batch."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    b = batch or len(x)
    pad = (-len(x)) % b
    xp = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
    out = np.concatenate([sess.run(None, {"x": xp[i:i + b]})[0] for i in range(0, len(xp), b)])
    return out[:len(x)]


@pytest.mark.parametrize("batch", [1, 4, None])
@pytest.mark.parametrize("n", [1, 3, 9])
def test_any_batch_size_on_any_declared_batch(batch, n, tmp_path):
    model = _model(tmp_path / "m.onnx", batch)
    x = np.random.default_rng(n).normal(0, 1, (n, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["infer", str(model), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 0
    got = np.load(tmp_path / "y.npy")
    assert got.shape == (n, 3)
    np.testing.assert_allclose(got, _reference(model, x, batch), rtol=1e-5, atol=1e-6)


def test_one_sample_without_the_batch_axis(tmp_path):
    model = _model(tmp_path / "m.onnx", 1)
    x = np.random.default_rng(0).normal(0, 1, (3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["infer", str(model), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), _reference(model, x[None], 1),
                               rtol=1e-5, atol=1e-6)


def test_a_bundled_model_by_name(tmp_path):
    x = np.random.default_rng(1).normal(0, 1, (5, 1, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["infer", "mbv2-tiny", "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 0
    sess = ort.InferenceSession(str(bundled_model("mbv2-tiny")), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-4, atol=1e-5)
