"""Softmax as exporters before opset 13 write it: over the input flattened
from `axis` (default 1) on. At the model's output, where at most one of those
trailing axes is not 1 (SqueezeNet's [1, C, 1, 1] after its global pool, or
[1, C]), it is a softmax over the classes and is imported; any other is
refused with an error naming the node. Each imported model is checked against
onnxruntime on the original file."""
import numpy as np
import pytest

from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from ir_models import M


def _squeezenet_tail(opset, classes=5, **softmax_attrs):
    """SqueezeNet 1.0's end: a 1x1 conv to the classes, ReLU, global average
    pool ([1, C, 1, 1]) and Softmax with the default axis 1."""
    m = M((1, 3, 12, 12), opset=opset)
    y = m.node("Relu", [m.conv("x", 3, 8, 3)])
    y = m.node("Relu", [m.conv(y, 8, classes, 1, name="conv10")])
    y = m.node("GlobalAveragePool", [y], name="pool10")
    return m, m.node("Softmax", [y], name="softmaxout_1", **softmax_attrs)


@pytest.mark.parametrize("opset", [7, 9, 11, 12])
def test_squeezenet_style_output_softmax_is_imported(opset, save, check_ort):
    m, s = _squeezenet_tail(opset)
    g = check_ort(save(m.model(s)))
    sm = g.node("softmaxout_1")
    assert sm.op == "Softmax" and sm.attrs["axis"] == 1 and sm.outputs == [g.output]
    assert g.shapes[g.output] == (1, 5, 1, 1)


@pytest.mark.parametrize("shape, axis, want", [((1, 6), 1, 1), ((1, 1, 6), 1, 2),
                                               ((1, 6, 1), 1, 1), ((1, 1, 1, 6), 2, 3)])
def test_one_non_unit_trailing_axis_is_the_softmax_axis(shape, axis, want, save, check_ort):
    m = M((1, 3, 4, 4), opset=11)
    f = m.node("Flatten", [m.node("GlobalAveragePool", [m.conv("x", 3, 6, 1)])])
    r = m.node("Reshape", [f, m.init(list(shape), dtype=np.int64)])
    g = check_ort(save(m.model(m.node("Softmax", [r], name="sm", axis=axis))))
    assert g.node("sm").attrs["axis"] == want


def test_a_softmax_over_flattened_spatial_axes_is_refused_naming_the_node(save):
    m = M((1, 3, 6, 6), opset=11)
    y = m.conv("x", 3, 4, 3)
    p = save(m.model(m.node("Softmax", [y], name="spatial_sm")))     # over C*H*W = 144
    with pytest.raises(MedyateError) as e:
        load_onnx(p)
    msg = str(e.value)
    assert "spatial_sm (Softmax)" in msg and "(4, 6, 6)" in msg and "flattened" in msg


def test_a_softmax_over_the_batch_is_refused(save):
    m = M((1, 3, 4, 4), opset=11)
    f = m.node("Flatten", [m.node("GlobalAveragePool", [m.conv("x", 3, 6, 1)])])
    p = save(m.model(m.node("Softmax", [f], name="batch_sm", axis=0)))
    with pytest.raises(MedyateError, match=r"batch_sm \(Softmax\).*the batch"):
        load_onnx(p)


def test_the_imported_model_runs_on_the_engine_like_onnxruntime(save, tmp_path):
    """The whole path: `medyate infer` of the SqueezeNet-style model gives
    onnxruntime's probabilities."""
    import onnxruntime as ort

    from medyate.cli import main
    m, s = _squeezenet_tail(9)
    p = save(m.model(s))
    x = np.random.default_rng(3).normal(0, 1, (4, 3, 12, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["infer", p, "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 0
    got = np.load(tmp_path / "y.npy")
    sess = ort.InferenceSession(p, providers=["CPUExecutionProvider"])
    want = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    assert got.shape == want.shape == (4, 5, 1, 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
