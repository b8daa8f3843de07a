"""The fine-tuned model exported to ONNX gives, in onnxruntime, the engine's outputs."""
from pathlib import Path

import numpy as np
import onnxruntime as ort

from medyate.engine.host import HostEngine
from medyate.ir.onnx_export import export_onnx
from medyate.ir.onnx_import import load_onnx

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_trained_model_exports_and_matches_engine(tmp_path):
    g = load_onnx(str(FIXTURES / "torch_tiny.onnx"))
    names = [n.name for n in g.trainable_nodes()]
    eng = HostEngine(g, trainable=names, budget_elements=300_000, train_bias=True)
    eng.select_all()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8,) + g.shapes[g.input][1:]).astype(np.float32)
    eng.train_epoch(x, rng.integers(0, 10, 8), batch=4, lr=0.2)
    path = tmp_path / "finetuned.onnx"
    export_onnx(eng.trained_graph(), str(path))
    sess = ort.InferenceSession(str(path))
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.abs(out - eng.forward(x)).max() <= 1e-4
    # and it differs from the original model: the training is in the file
    orig = ort.InferenceSession(str(FIXTURES / "torch_tiny.onnx"))
    assert np.abs(out - orig.run(None, {orig.get_inputs()[0].name: x})[0]).max() > 1e-3
    # the exported file imports again
    g2 = load_onnx(str(path))
    assert [n.name for n in g2.nodes] == [n.name for n in g.nodes]
