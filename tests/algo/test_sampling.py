import math

import numpy as np
import pytest

from medyate.algo.importance import ChannelImportance
from medyate.algo.sampling import fill_budget, priority_order, sample_indices, sample_selection
from medyate.algo.trainer import LayerSpec


def _costs(rng, n=60):
    return rng.integers(5, 60, size=n)


@pytest.mark.parametrize("T", [0.0, 0.3, 1.0, 4.0, math.inf])
def test_never_over_budget_fills_within_one_channel_no_duplicates(T):
    rng = np.random.default_rng(1)
    for trial in range(200):
        costs = _costs(rng)
        imp = rng.exponential(size=len(costs)) ** 3
        budget = int(rng.integers(0, costs.sum() + 50))
        idx = sample_indices(costs, imp, budget, T, rng)
        used = int(costs[idx].sum())
        assert used <= budget
        assert len(set(idx.tolist())) == len(idx)
        assert np.all(np.diff(idx) > 0)
        rest = np.setdiff1d(np.arange(len(costs)), idx)
        if rest.size:
            # nothing left out would still have fitted
            assert budget - used < costs[rest].min()


def test_skips_big_channels_and_continues_with_smaller():
    costs = np.array([10, 100, 5])
    # order: 0 then 1 (does not fit) then 2
    assert fill_budget(costs, np.array([0, 1, 2]), 20).tolist() == [0, 2]


def test_large_temperature_is_uniform():
    rng = np.random.default_rng(2)
    n, k, trials = 20, 5, 6000
    imp = np.geomspace(1e-3, 1e3, n)       # 6 decades of importance
    counts = np.zeros(n)
    costs = np.ones(n, dtype=np.int64)
    for _ in range(trials):
        counts[sample_indices(costs, imp, k, 1e9, rng)] += 1
    freq = counts / trials
    # each channel is in a uniform k-of-n sample with probability k/n = 0.25
    sd = math.sqrt(0.25 * 0.75 / trials)
    assert np.all(np.abs(freq - k / n) < 5 * sd)
    # T = inf exactly: the same code path, the same statistics
    counts[:] = 0
    for _ in range(trials):
        counts[sample_indices(costs, imp, k, math.inf, rng)] += 1
    assert np.all(np.abs(counts / trials - k / n) < 5 * sd)


def test_small_temperature_is_top_k():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = 30
        imp = rng.permutation(np.geomspace(0.5, 2.0, n))   # distinct, only 4x apart
        costs = np.ones(n, dtype=np.int64)
        top = np.sort(np.argsort(-imp)[:7])
        assert sample_indices(costs, imp, 7, 0.0, rng).tolist() == top.tolist()
        assert sample_indices(costs, imp, 7, 1e-3, rng).tolist() == top.tolist()


def test_temperature_one_draws_proportionally():
    # one draw (budget = one channel): P(i) = w_i / sum w
    rng = np.random.default_rng(4)
    imp = np.array([1.0, 2.0, 3.0, 4.0])
    counts = np.zeros(4)
    trials = 20000
    for _ in range(trials):
        counts[sample_indices(np.ones(4, dtype=np.int64), imp, 1, 1.0, rng)] += 1
    p = imp / imp.sum()
    assert np.all(np.abs(counts / trials - p) < 5 * np.sqrt(p * (1 - p) / trials))


def test_temperature_interpolates():
    rng = np.random.default_rng(5)
    imp = np.geomspace(1, 100, 10)
    costs = np.ones(10, dtype=np.int64)

    def top_freq(T):
        hits = 0
        for _ in range(2000):
            hits += 9 in sample_indices(costs, imp, 3, T, rng)
        return hits / 2000
    f = [top_freq(T) for T in (100.0, 2.0, 0.5)]
    assert f[0] < f[1] < f[2]


def test_zero_importance_still_drawable_when_uniform():
    rng = np.random.default_rng(6)
    imp = np.array([0.0, 0.0, 1.0])
    seen = set()
    for _ in range(100):
        seen |= set(sample_indices(np.ones(3, dtype=np.int64), imp, 1, math.inf, rng).tolist())
    assert seen == {0, 1, 2}
    assert sample_indices(np.ones(3, dtype=np.int64), imp, 1, 1.0, rng).tolist() == [2]


def test_seeded_reproducible():
    costs = np.arange(1, 40)
    imp = np.linspace(1, 2, 39)
    a = sample_indices(costs, imp, 100, 1.0, np.random.default_rng(7))
    b = sample_indices(costs, imp, 100, 1.0, np.random.default_rng(7))
    assert a.tolist() == b.tolist()


def test_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        priority_order(np.array([1.0, -1.0]), 1.0, rng)
    with pytest.raises(ValueError):
        priority_order(np.array([1.0]), -1.0, rng)


def test_sample_selection_pairs():
    specs = {"a": LayerSpec("a", 4, 3, 2), "b": LayerSpec("b", 3, 10, 10)}
    cands = [(n, c) for n in specs for c in range(specs[n].channels)]
    sel = sample_selection(cands, specs, None, 27, math.inf, np.random.default_rng(0))
    assert sum(specs[n].cost for n, _ in sel) <= 27
    assert len(set(sel)) == len(sel)


def test_importance_refresh_keeps_stale_values():
    specs = [LayerSpec("a", 4, 3, 2), LayerSpec("b", 2, 10, 10)]
    imp = ChannelImportance.from_energy(specs, {"a": np.array([1.0, 2.0, 3.0, 4.0]),
                                                "b": np.array([5.0, 6.0])})
    # epoch 0 trained a1 and b0 for 4 steps
    imp.update({("a", 1): 40.0, ("b", 0): 8.0}, steps=4, epoch=0)
    pairs = [("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 0), ("b", 1)]
    assert imp.energies(pairs).tolist() == [1.0, 10.0, 3.0, 4.0, 2.0, 6.0]
    assert imp.last_update["a"].tolist() == [-2, 0, -2, -2]
    # epoch 1 trained a0 only: a1 keeps its epoch-0 value
    imp.update({("a", 0): 9.0}, steps=3, epoch=1)
    assert imp.energies(pairs).tolist() == [3.0, 10.0, 3.0, 4.0, 2.0, 6.0]
    assert imp.last_update["a"].tolist() == [1, 0, -2, -2]
    # importance = energy per element of cost
    np.testing.assert_allclose(imp.importances(pairs),
                               np.array([3, 10, 3, 4, 2, 6]) / np.array([5, 5, 5, 5, 20, 20]))


def test_importance_unmeasured_uses_layer_mean_and_momentum():
    specs = [LayerSpec("a", 3, 1, 1), LayerSpec("b", 2, 1, 1)]
    imp = ChannelImportance(specs, momentum=0.5)
    imp.update({("a", 0): 2.0, ("a", 1): 4.0}, steps=1, epoch=0)
    e = imp.energies([("a", 2), ("b", 0)])
    assert e.tolist() == [3.0, 3.0]
    imp.update({("a", 0): 4.0}, steps=1, epoch=1)
    assert imp.energies([("a", 0)]).tolist() == [3.0]
