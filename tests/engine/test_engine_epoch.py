"""The runtime's epoch (mdy_train_epoch / mdy_eval_sample) through the host
engine: mini-batch boundaries and the scaling of a last short mini-batch,
evaluation as a mean of per-sample losses, and non-finite detection."""
import numpy as np

from medyate.engine.host import HostEngine, loss_and_accuracy


def _engine(graph):
    names = [n.name for n in graph.trainable_nodes()]
    eng = HostEngine(graph.copy(), trainable=names, budget_elements=300_000, train_bias=True)
    eng.select_all()
    return eng


def _data(graph, rng, n):
    x = rng.standard_normal((n,) + graph.shapes[graph.input][1:]).astype(np.float32)
    return x, rng.integers(0, 10, n)


def test_short_last_batch_is_a_mean_of_its_own_samples(tiny_graph, rng):
    """6 samples in batches of 4 = an epoch of the first 4 (batch 4), then one
    of the last 2 (batch 2): the last step is scaled by 1/2, not 1/4."""
    x, y = _data(tiny_graph, rng, 6)
    order = np.array([5, 0, 3, 1, 4, 2])
    a, b = _engine(tiny_graph), _engine(tiny_graph)
    ra = a.train_epoch(x, y, batch=4, lr=0.05, order=order)
    r1 = b.train_epoch(x, y, batch=4, lr=0.05, order=order[:4])
    r2 = b.train_epoch(x, y, batch=4, lr=0.05, order=order[4:])
    assert (ra.steps, r1.steps, r2.steps) == (2, 1, 1)
    for k, (w, bias) in a.weights().items():
        np.testing.assert_array_equal(w, b.weights()[k][0])
        np.testing.assert_array_equal(bias, b.weights()[k][1])
    np.testing.assert_allclose(ra.loss * 6, r1.loss * 4 + r2.loss * 2, rtol=1e-6)
    assert ra.nonfinite == 0


def test_evaluate_is_the_mean_cross_entropy_of_the_logits(tiny_graph, rng):
    x, y = _data(tiny_graph, rng, 12)
    eng = _engine(tiny_graph)
    loss, acc = eng.evaluate(x, y)
    ref_loss, ref_acc = loss_and_accuracy(eng.forward(x).astype(np.float64), y)
    assert acc == ref_acc
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)


def test_divergence_is_counted(tiny_graph, rng):
    """A learning rate that blows the weights up: the epoch reports its NaN/inf
    losses and gradients (nonfinite), a sane one reports none."""
    x, y = _data(tiny_graph, rng, 16)
    eng = _engine(tiny_graph)
    assert eng.train_epoch(x, y, batch=4, lr=0.01).nonfinite == 0
    r = eng.train_epoch(x, y, batch=4, lr=1e30)
    assert r.nonfinite > 0 and not np.isfinite(r.loss)
    # a NaN sample on a fresh engine: its loss and its step are both counted
    eng = _engine(tiny_graph)
    x[3] = np.nan
    r = eng.train_epoch(x[:4], y[:4], batch=4, lr=0.01)
    assert r.nonfinite == 2     # one NaN loss, one step with NaN gradients
