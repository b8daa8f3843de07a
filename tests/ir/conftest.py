"""Fixtures of the IR tests: saving built models and comparing with onnxruntime."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "fixtures")


@pytest.fixture
def fixtures_dir():
    return FIXTURES


@pytest.fixture
def save(tmp_path):
    """save(model, name="m.onnx") -> path of the written file."""
    def _save(model: onnx.ModelProto, name: str = "m.onnx") -> str:
        p = tmp_path / name
        onnx.save(model, str(p))
        return str(p)
    return _save


def ort_run(path, x):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture
def check_ort():
    """check_ort(path, input_shape=None, shape=None) -> Graph, asserting that the IR
    evaluated in numpy matches onnxruntime on the original model on random inputs
    (max error <= 1e-5 of the output's max abs)."""
    from medyate.ir.onnx_import import load_onnx
    from medyate.ir.reference import evaluate

    def _check(path, input_shape=None, trials=2):
        g = load_onnx(path, input_shape)
        rng = np.random.default_rng(42)
        for _ in range(trials):
            x = rng.normal(0, 2, g.shapes[g.input]).astype(np.float32)
            want = ort_run(path, x)
            got = evaluate(g, x)
            assert got.shape == want.shape
            err = np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30)
            assert err <= 1e-5, f"relative error {err}"
        return g
    return _check
