"""The host build of the C engine on whole models: forward against
onnxruntime, gradients against the numpy reference (finite differences), the
sparse-update contract, and selection validation."""
import numpy as np
import onnxruntime as ort
import pytest

from medyate.engine.host import HostEngine, from_onnx_layout
from medyate.errors import MedyateError
from medyate.ir.reference import evaluate

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


def _loss_ref(graph, x, label) -> float:
    z = evaluate(graph, x[None]).astype(np.float64)[0]
    z = z - z.max()
    return float(np.log(np.exp(z).sum()) - z[label])


@pytest.mark.parametrize("name", ["torch_tiny.onnx", "torch_tiny_const.onnx"])
def test_forward_matches_onnxruntime(name, rng):
    from medyate.ir.onnx_import import load_onnx
    path = str(FIXTURES / name)
    g = load_onnx(path)
    eng = HostEngine(g)
    x = rng.standard_normal((3,) + g.shapes[g.input][1:]).astype(np.float32)
    sess = ort.InferenceSession(path)
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.abs(eng.forward(x) - ref).max() <= 1e-4


def test_slice_gradients_match_finite_differences(tiny_graph, rng):
    g = tiny_graph
    names = [n.name for n in g.trainable_nodes()]
    eng = HostEngine(g, trainable=names, budget_elements=300_000)
    # A few channels in every kind of layer: dense, depthwise, SE convs, FC.
    sel = [(i, c) for i, l in enumerate(eng.program.layers) for c in sorted({0, l.channels - 1})]
    eng.set_selection(sel)
    x = rng.standard_normal(g.shapes[g.input][1:]).astype(np.float32)
    label = 3
    xs = eng._nhwc(x[None])[0]
    assert eng.lib.mdy_train_sample(eng.ctx, eng.ffi.from_buffer("float[]", xs), label, 1) == 0

    checked = 0
    for k, (li, c) in enumerate(sel):
        layer = eng.program.layers[li]
        grad = np.frombuffer(eng.ffi.buffer(eng.lib.mdy_slice_grad(eng.ctx, k), 4 * layer.slice_size),
                             dtype=np.float32).copy()
        node = g.node(layer.name)
        w0 = node.params["weight"]
        # Where slice element s of channel c sits in the ONNX weight: build a
        # one-hot in C layout and map it back.
        for s in rng.choice(layer.slice_size, size=min(3, layer.slice_size), replace=False):
            op = eng.program.ops[layer.op]
            onehot = np.zeros(op.weight.size, dtype=np.float32)
            flat = _slice_index(op, layer, c, s)
            onehot[flat] = 1.0
            from medyate.engine.host import to_onnx_layout
            saved = op.weight.copy()
            op.weight[...] = onehot.reshape(op.weight.shape)
            direction = to_onnx_layout(eng.program, layer.op)
            op.weight[...] = saved
            eps = 1e-3
            gp = g.copy(); gp.node(layer.name).params["weight"] = (w0 + eps * direction).astype(np.float64)
            gm = g.copy(); gm.node(layer.name).params["weight"] = (w0 - eps * direction).astype(np.float64)
            fd = (_loss_ref(gp, x, label) - _loss_ref(gm, x, label)) / (2 * eps)
            assert abs(grad[s] - fd) <= 1e-3 * max(1.0, abs(fd)) + 2e-4, (layer.name, c, s, grad[s], fd)
            checked += 1
    assert checked >= 2 * len(sel)


def _slice_index(op, layer, c, s):
    """Flat index in the C-layout weight of element s of channel c's slice."""
    from medyate.planner.program import DEPTHWISE_CONV2D
    if op.kind == DEPTHWISE_CONV2D:
        return c * layer.slice_size + s
    return s * op.params["in_c"] + c


def test_sparse_gradient_is_full_gradient_restricted(tiny_graph, rng):
    g = tiny_graph
    names = [n.name for n in g.trainable_nodes()]
    x = rng.standard_normal(g.shapes[g.input][1:]).astype(np.float32)

    def grads(sel):
        eng = HostEngine(g, trainable=names, budget_elements=300_000)
        eng.set_selection(sel)
        xs = eng._nhwc(x[None])[0]
        assert eng.lib.mdy_train_sample(eng.ctx, eng.ffi.from_buffer("float[]", xs), 1, 1) == 0
        out = {}
        for k, (li, c) in enumerate(sel):
            n = eng.program.layers[li].slice_size
            out[(li, c)] = np.frombuffer(eng.ffi.buffer(eng.lib.mdy_slice_grad(eng.ctx, k), 4 * n),
                                         dtype=np.float32).copy()
        return out, eng

    full, eng = grads([(i, c) for i, l in enumerate(HostEngine(g, names, 300_000).program.layers)
                       for c in range(l.channels)])
    keys = sorted(full)
    sub = sorted(keys[i] for i in rng.choice(len(keys), size=12, replace=False))
    part, _ = grads(sub)
    for key in sub:
        np.testing.assert_allclose(part[key], full[key], rtol=1e-5, atol=1e-7)


def test_empty_selection_changes_nothing(tiny_graph, rng):
    names = [n.name for n in tiny_graph.trainable_nodes()]
    eng = HostEngine(tiny_graph, trainable=names, budget_elements=5000)
    before = {k: (w.copy(), b.copy()) for k, (w, b) in eng.weights().items()}
    x = rng.standard_normal((6,) + tiny_graph.shapes[tiny_graph.input][1:]).astype(np.float32)
    r = eng.train_epoch(x, np.arange(6) % 3, batch=2, lr=0.5)
    assert r.steps == 3 and np.isfinite(r.loss)
    for k, (w, b) in eng.weights().items():
        np.testing.assert_array_equal(w, before[k][0])
        np.testing.assert_array_equal(b, before[k][1])


def test_selected_slices_are_the_only_weights_that_change(tiny_graph, rng):
    names = [n.name for n in tiny_graph.trainable_nodes()]
    eng = HostEngine(tiny_graph, trainable=names, budget_elements=20_000)
    li = len(eng.program.layers) - 2          # a conv deep in the model
    eng.set_selection([(li, 1), (li, 2)])
    before = {l.name: eng.program.ops[l.op].weight.copy() for l in eng.program.layers}
    x = rng.standard_normal((4,) + tiny_graph.shapes[tiny_graph.input][1:]).astype(np.float32)
    eng.train_epoch(x, np.array([0, 1, 2, 3]), batch=4, lr=0.5)
    for l in eng.program.layers:
        w = eng.program.ops[l.op].weight
        changed = np.argwhere(w != before[l.name])
        if l.name != eng.program.layers[li].name:
            assert changed.size == 0, l.name
        else:
            assert changed.size > 0
            assert set(changed[:, -1].tolist()) <= {1, 2}   # OHWI: last axis is the input channel


@pytest.mark.parametrize("sel,msg", [
    ([(99, 0)], "out of range"),
    ([(0, 9999)], "out of range"),
    ([(0, 1), (0, 1)], "strictly increasing"),
    ([(0, 2), (0, 1)], "strictly increasing"),
])
def test_bad_selection_rejected_and_previous_kept(tiny_graph, sel, msg):
    names = [n.name for n in tiny_graph.trainable_nodes()]
    eng = HostEngine(tiny_graph, trainable=names, budget_elements=20_000)
    eng.set_selection([(0, 0)])
    with pytest.raises(MedyateError, match=msg):
        eng.set_selection(sel)
    assert eng.ctx.n_selected == 1


def test_selection_over_budget_rejected(tiny_graph):
    names = [n.name for n in tiny_graph.trainable_nodes()]
    eng = HostEngine(tiny_graph, trainable=names, budget_elements=2_000)
    with pytest.raises(MedyateError, match="budget"):
        eng.select_all()


def test_full_update_lowers_training_loss(tiny_graph, rng):
    names = [n.name for n in tiny_graph.trainable_nodes()]
    eng = HostEngine(tiny_graph, trainable=names, budget_elements=300_000, train_bias=True)
    eng.select_all()
    x = rng.standard_normal((16,) + tiny_graph.shapes[tiny_graph.input][1:]).astype(np.float32)
    y = rng.integers(0, 10, 16)
    first = eng.train_epoch(x, y, batch=4, lr=0.1).loss
    for _ in range(20):
        last = eng.train_epoch(x, y, batch=4, lr=0.1).loss
    assert last < 0.5 * first


def test_load_weights_round_trip(tiny_graph, rng):
    names = [n.name for n in tiny_graph.trainable_nodes()]
    eng = HostEngine(tiny_graph, trainable=names, budget_elements=1000)
    w = eng.weights()
    eng.load_weights(w)
    for k in w:
        np.testing.assert_array_equal(eng.weights()[k][0], w[k][0])
        np.testing.assert_array_equal(w[k][0], tiny_graph.node(k).params["weight"].astype(np.float32))
    x = rng.standard_normal((2,) + tiny_graph.shapes[tiny_graph.input][1:]).astype(np.float32)
    np.testing.assert_allclose(eng.forward(x), evaluate(eng.trained_graph(), x), atol=1e-4)
