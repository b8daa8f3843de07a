import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MEDYATE = [sys.executable, "-m", "medyate.cli"]


def test_infer_matches_onnxruntime(tmp_path):
    model = FIXTURES / "torch_tiny.onnx"
    sess = ort.InferenceSession(str(model))
    shape = [2] + list(sess.get_inputs()[0].shape[1:])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run(MEDYATE + ["infer", str(model), "--input", str(tmp_path / "x.npy"),
                                  "--out", str(tmp_path / "y.npy")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    y = np.load(tmp_path / "y.npy")
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert y.shape == ref.shape
    assert np.abs(y - ref).max() <= 1e-4


def test_infer_rejects_wrong_shape(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 5, 5), np.float32))
    r = subprocess.run(MEDYATE + ["infer", str(FIXTURES / "torch_tiny.onnx"), "--input",
                                  str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "the model expects" in r.stderr and "Traceback" not in r.stderr
