import numpy as np
import pytest

from fake_engine import FakeFactory, make_problem
from medyate.algo.ranking import (LAYER_METRICS, layer_scores, preselect, rank_layers,
                                  ranking_run, register_metric)
from medyate.algo.trainer import LayerSpec


def _rescaled_problem(seed):
    """layer2's weights x0.1, the classifier's x10: the same function (ReLU is
    positively homogeneous, biases are zero) but layer2's gradients 10x larger and
    the classifier's 10x smaller: layer2 clearly matters most."""
    f, task = make_problem(seed=seed, noise=0.5, fresh_head=False)
    p = list(f.params)
    p[2] = (p[2][0], p[2][1] * 0.1, p[2][2])
    p[3] = (p[3][0], p[3][1] * 10, p[3][2])
    return FakeFactory(p, f.hw), task


@pytest.mark.parametrize("metric", ["rgn", "rgn_norm", "lara"])
@pytest.mark.parametrize("seed", [0, 1])
def test_layer_that_matters_ranks_first(metric, seed):
    f, task = _rescaled_problem(seed)
    run = ranking_run(f, task.x_train, task.y_train, samples=256, lr=1e-3, seed=seed)
    assert rank_layers(layer_scores(run, metric))[0] == "layer2"


@pytest.mark.parametrize("metric", ["rgn", "rgn_norm", "lara"])
def test_fresh_classifier_ranks_first(metric):
    f, task = make_problem(seed=3)
    run = ranking_run(f, task.x_train, task.y_train, samples=200, lr=1e-2)
    assert rank_layers(layer_scores(run, metric))[0] == "layer3"


def test_ranking_run_is_full_backprop_on_a_subset():
    f, task = make_problem(seed=0)
    run = ranking_run(f, task.x_train, task.y_train, samples=100, batch=32)
    eng = f.engines[-1]
    assert [l.name for l in eng.layers] == [s.name for s in f.layers]
    assert len(eng.selections_seen[-1]) == sum(s.channels for s in f.layers)
    assert eng.train_bias
    assert run.steps == 4 and run.samples == 100
    assert all(np.all(e >= 0) and e.shape == (s.channels,)
               for s, e in zip(run.specs, run.energy.values()))


def test_metric_formulas():
    from medyate.algo.ranking import RankingRun
    specs = [LayerSpec("a", 2, 3, 1), LayerSpec("b", 1, 10, 0)]
    run = RankingRun(specs, {"a": np.array([4.0, 16.0]), "b": np.array([100.0])}, 1, 1, 0)
    assert layer_scores(run, "rgn_norm") == pytest.approx({"a": (2 + 4) / 4, "b": 10 / 10})
    assert layer_scores(run, "rgn") == pytest.approx({"a": 20 / 4, "b": 100 / 10})
    assert layer_scores(run, "lara") == pytest.approx({"a": 20 / (4 * 8), "b": 100 / 40})
    with pytest.raises(ValueError):
        layer_scores(run, "nope")


def test_registry_is_pluggable():
    @register_metric("ones_test")
    def ones(run):
        return {s.name: 1.0 for s in run.specs}
    try:
        from medyate.algo.ranking import RankingRun
        run = RankingRun([LayerSpec("a", 1, 1, 1)], {"a": np.ones(1)}, 1, 1, 0)
        assert layer_scores(run, "ones_test") == {"a": 1.0}
    finally:
        del LAYER_METRICS["ones_test"]


def test_preselect_coverage_and_budget():
    scores = {"a": 1.0, "b": 50.0, "c": 30.0, "d": 15.0, "e": 4.0}
    assert preselect(scores, 0.5) == ["b"]
    assert preselect(scores, 0.8) == ["b", "c"]
    assert preselect(scores, 0.95) == ["b", "c", "d"]
    assert preselect(scores, 0.96) == ["b", "c", "d", "e"]
    assert preselect(scores, 1.0) == ["b", "c", "d", "e", "a"]
    specs = [LayerSpec(n, 10, 1, 0) for n in scores]        # 10 elements per layer
    assert preselect(scores, 0.5, specs=specs, budget=25) == ["b", "c", "d"]
    assert preselect(scores, 0.5, specs=specs, budget=5) == ["b"]
    assert preselect(scores, 0.96, max_layers=2) == ["b", "c"]
