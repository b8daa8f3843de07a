import math

import numpy as np
import pytest

from fake_engine import make_problem
from medyate.algo.ranking import ranking_run
from medyate.algo.strategies import (STRATEGIES, MeDyate, StaticSparseUpdate,
                                     channel_magnitudes, data_order, make_strategy,
                                     run_strategy)

BUDGET = 150
EPOCHS = 6


@pytest.fixture(scope="module")
def problem():
    f, task = make_problem(seed=0)
    run = ranking_run(f, task.x_train, task.y_train, samples=256, lr=0.01)
    return f, task, run


def _run(problem, name, **kw):
    f, task, run = problem
    strat = make_strategy(name, **kw)
    hist = run_strategy(f, task, strat, EPOCHS, 16, 0.1, 0, BUDGET, ranking=run)
    return strat, f.engines[-1], hist


def _names(sel, eng):
    return {eng.layers[l].name for l, _ in sel}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_lowers_the_loss(problem, name):
    f, task, run = problem
    start = f([], 0, False).evaluate(task.x_test, task.y_test)[0]
    strat, eng, hist = _run(problem, name)
    assert len(hist) == EPOCHS
    assert hist[-1]["test_loss"] < start
    assert hist[-1]["loss"] < hist[0]["loss"]
    for rec in hist:
        assert set(rec) >= {"loss", "train_acc", "test_acc", "channels", "elements",
                            "bytes", "lr"}
        assert rec["bytes"] == eng.memory()["total"]


def test_full(problem):
    f = problem[0]
    _, eng, hist = _run(problem, "full")
    total = sum(s.channels for s in f.layers)
    assert all(len(s) == total for s in eng.selections_seen)
    assert hist[0]["elements"] == sum(s.total_cost for s in f.layers)


def test_last_layer_only(problem):
    _, eng, hist = _run(problem, "last")
    assert [l.name for l in eng.layers] == ["layer3"]
    assert all(_names(s, eng) == {"layer3"} and len(s) == 16 for s in eng.selections_seen)


def test_bias_only(problem):
    f = problem[0]
    _, eng, hist = _run(problem, "bias")
    assert all(s == [] for s in eng.selections_seen)
    w = eng.weights()
    for (name, W, b) in f.params:
        np.testing.assert_array_equal(w[name][0], W.astype(np.float32))
    assert any(np.any(w[n][1] != 0) for n in w)


def test_su_static_by_weight_magnitude(problem):
    f = problem[0]
    strat, eng, hist = _run(problem, "su", n_weight_layers=2, n_bias_layers=3)
    sels = eng.selections_seen
    assert all(s == sels[0] for s in sels)
    assert [l.name for l in eng.layers] == ["layer1", "layer2", "layer3"]
    assert eng.train_bias
    assert _names(sels[0], eng) <= {"layer2", "layer3"}
    spec = {s.name: s for s in f.layers}
    used = sum(spec[eng.layers[l].name].cost for l, _ in sels[0])
    assert BUDGET - min(spec["layer2"].cost, spec["layer3"].cost) < used <= BUDGET
    # within each layer the chosen channels are the largest-magnitude ones
    params = {n: W for n, W, _ in f.params}
    for name in _names(sels[0], eng):
        li = [l.name for l in eng.layers].index(name)
        chosen = sorted(c for l, c in sels[0] if l == li)
        mags = channel_magnitudes(params[name], spec[name].channels)
        assert sorted(np.argsort(-mags)[:len(chosen)].tolist()) == chosen


def test_channel_magnitudes_layouts():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 4, 3, 3))          # dense conv
    np.testing.assert_allclose(channel_magnitudes(W, 4),
                               [np.linalg.norm(W[:, c]) for c in range(4)])
    D = rng.normal(size=(8, 1, 3, 3))          # depthwise, multiplier 2
    np.testing.assert_allclose(channel_magnitudes(D, 4),
                               [np.linalg.norm(D[2 * c:2 * c + 2]) for c in range(4)])
    G = rng.normal(size=(5, 7))                # Gemm
    np.testing.assert_allclose(channel_magnitudes(G, 7), np.linalg.norm(G, axis=0))


def test_static_random_is_static_and_in_budget(problem):
    f = problem[0]
    spec = {s.name: s for s in f.layers}
    _, eng, _ = _run(problem, "static-random")
    sels = eng.selections_seen
    assert all(s == sels[0] for s in sels)
    assert sum(spec[eng.layers[l].name].cost for l, _ in sels[0]) <= BUDGET


def test_trady_resamples_uniformly_in_top_layers(problem):
    f = problem[0]
    spec = {s.name: s for s in f.layers}
    strat, eng, hist = _run(problem, "trady")
    sels = eng.selections_seen
    assert len({tuple(s) for s in sels}) > 1
    assert not eng.train_bias
    cheapest = min(spec[l.name].cost for l in eng.layers)
    for s in sels:
        used = sum(spec[eng.layers[l].name].cost for l, _ in s)
        assert BUDGET - cheapest < used <= BUDGET
        assert len(set(s)) == len(s)
    # the engine only has the pre-selected layers
    assert {l.name for l in eng.layers} == set(strat.layers)


def test_medyate_refreshes_exactly_trained_channels(problem):
    strat, eng, hist = _run(problem, "medyate", temperature=1.0)
    names = [l.name for l in eng.layers]
    last = {}
    for epoch, sel in enumerate(eng.selections_seen):
        for l, c in sel:
            last[(names[l], c)] = epoch
    for name in strat.layers:
        for c, ep in enumerate(strat.importance.last_update[name]):
            assert ep == last.get((name, c), -2)


def test_medyate_temperature_zero_is_deterministic_top(problem):
    strat, eng, _ = _run(problem, "medyate", temperature=0.0)
    # first selection = top importance channels (costs are equal within a layer
    # and the budget fill is greedy in importance order)
    sel0 = eng.selections_seen[0]
    f = problem[0]
    spec = {s.name: s for s in f.layers}
    run = problem[2]
    from medyate.algo.importance import ChannelImportance
    from medyate.algo.sampling import fill_budget
    cands = strat.candidates
    imp = ChannelImportance.from_energy([spec[n] for n in strat.layers],
                                        run.energy).importances(cands)
    costs = np.array([spec[n].cost for n, _ in cands])
    want = fill_budget(costs, np.argsort(-imp, kind="stable"), BUDGET)
    names = [l.name for l in eng.layers]
    assert sorted((names[l], c) for l, c in sel0) == sorted(cands[i] for i in want)


def test_same_data_order_for_all_strategies():
    a = data_order(100, 3, 2)
    assert np.array_equal(a, data_order(100, 3, 2))
    assert not np.array_equal(a, data_order(100, 3, 3))
    assert sorted(a) == list(range(100))


def test_ranking_computed_once_if_not_given():
    f, task = make_problem(seed=1)
    run_strategy(f, task, "trady", 2, 16, 0.1, 0, 100)
    # one ranking engine + one training engine
    assert len(f.engines) == 2


def test_unknown_strategy():
    with pytest.raises(ValueError):
        make_strategy("sgd-magic")


def test_su_published_scheme_trains_its_layers_and_ratios(problem):
    from medyate.algo.su_schemes import SUScheme
    f = problem[0]
    spec = {s.name: s for s in f.layers}
    convs = [s.name for s in f.layers][:-1]          # the classifier is not counted
    scheme = SUScheme(n_bias=2, weight_idx=(0, 1), ratio=(0.5, 0.0))
    strat, eng, hist = _run(problem, "su", scheme=scheme, always=["layer3"])
    sels = eng.selections_seen
    assert all(s == sels[0] for s in sels)
    names = [l.name for l in eng.layers]
    # biases of the last 2 convolutions, weights of conv 0, the head in full
    assert names == [convs[0]] + convs[-2:] + ["layer3"] and eng.train_bias
    per_layer = {n: sorted(c for l, c in sels[0] if names[l] == n) for n in names}
    k = math.floor(0.5 * spec[convs[0]].channels + 0.5)
    mags = channel_magnitudes(dict((n, W) for n, W, _ in f.params)[convs[0]],
                              spec[convs[0]].channels)
    assert per_layer[convs[0]] == sorted(np.argsort(-mags)[:k].tolist())
    assert per_layer[convs[1]] == []                  # ratio 0: listed, frozen
    assert per_layer["layer3"] == list(range(spec["layer3"].channels))
    assert hist[0]["elements"] == k * spec[convs[0]].cost + spec["layer3"].total_cost


def test_su_scheme_that_does_not_fit_the_model_names_it(problem):
    from medyate.algo.su_schemes import SUScheme, scheme_layers
    with pytest.raises(ValueError, match="3 convolutions"):
        scheme_layers(SUScheme(1, (5,), (1.0,)), ["a", "b", "c"])


@pytest.mark.parametrize("name", ["static-random", "trady", "medyate"])
def test_always_layers_train_in_full_inside_the_budget(problem, name):
    f = problem[0]
    spec = {s.name: s for s in f.layers}
    strat, eng, hist = _run(problem, name, always=["layer3"])
    names = [l.name for l in eng.layers]
    head = spec["layer3"]
    for sel in eng.selections_seen:
        assert sorted(c for l, c in sel if names[l] == "layer3") == list(range(head.channels))
        assert sum(spec[names[l]].cost for l, _ in sel) <= BUDGET
        assert any(names[l] != "layer3" for l, _ in sel)     # the rest is sampled
    with pytest.raises(Exception, match="does not hold"):
        f_, task, run = problem
        run_strategy(f_, task, make_strategy(name, always=["layer3"]), 1, 16, 0.1, 0,
                     head.total_cost - 1, ranking=run)


def test_bias_only_with_the_head_trains_its_weights_too(problem):
    f = problem[0]
    f_, task, run = problem
    strat = make_strategy("bias", always=["layer3"])
    run_strategy(f_, task, strat, 2, 16, 0.1, 0, 0, ranking=run)
    eng = f.engines[-1]
    w = eng.weights()
    for (name, W, b) in f.params:
        same = np.array_equal(w[name][0], W.astype(np.float32))
        assert same == (name != "layer3"), name
