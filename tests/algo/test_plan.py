import numpy as np
import pytest

from fake_engine import make_problem
from medyate.algo.measure import compare_metrics, layer_oracle, spearman
from medyate.algo.plan import plan_training
from medyate.algo.ranking import ranking_run
from medyate.algo.strategies import run_strategy
from medyate.errors import MedyateError


def _mem_for(layers, train_bias):
    # a deeper reach costs more: 2000 bytes per trainable layer
    return lambda b: 10_000 + 2_000 * len(layers) + 4 * b


@pytest.fixture(scope="module")
def problem():
    f, task = make_problem(seed=2)
    run = ranking_run(f, task.x_train, task.y_train, samples=128)
    return f, task, run


def test_plan_from_elements(problem):
    f, task, run = problem
    p = plan_training(f, task.x_train, task.y_train, elements=300, ranking=run)
    spec = {s.name: s for s in f.layers}
    assert p.budget_elements == 300
    assert sum(spec[n].total_cost for n in p.layers) >= 300
    assert set(p.importance) == set(p.layers)


@pytest.mark.parametrize("ram", [13_000, 14_000, 16_000, 30_000])
def test_plan_from_ram_is_largest_that_fits(problem, ram):
    f, task, run = problem
    p = plan_training(f, task.x_train, task.y_train, ram=ram, memory_fn_for=_mem_for,
                      ranking=run)
    fn = _mem_for(p.layers, False)
    most = sum(s.total_cost for s in f.layers if s.name in p.layers)
    assert p.memory_bytes == fn(p.budget_elements) <= ram
    assert p.budget_elements == most or fn(p.budget_elements + 1) > ram


def test_plan_infeasible_ram(problem):
    f, task, run = problem
    with pytest.raises(MedyateError, match="smallest feasible"):
        plan_training(f, task.x_train, task.y_train, ram="10kB", memory_fn_for=_mem_for,
                      ranking=run)


def test_plan_drives_medyate(problem):
    f, task, run = problem
    p = plan_training(f, task.x_train, task.y_train, elements=120, ranking=run)
    from medyate.algo.strategies import MeDyate
    s = MeDyate(layers=p.layers, importance=p.importance, temperature=0.5)
    hist = run_strategy(f, task, s, 3, 16, 0.1, 0, p.budget_elements)
    assert {l.name for l in f.engines[-1].layers} == set(p.layers)
    assert all(h["elements"] <= 120 for h in hist)


def test_spearman():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(np.corrcoef([0.5, 0.5, 2], [0, 1, 2])[0, 1])


def test_oracle_and_comparison_run(problem):
    f, task, run = problem
    orc = layer_oracle(f, task, 100, epochs=2, batch=16, lr=0.1)
    assert set(orc) == {s.name for s in f.layers}
    c = compare_metrics(run, orc)
    assert set(c) >= {"rgn", "rgn_norm", "lara"}


def test_a_new_head_is_planned_in_full(problem):
    """With `always`, the head is in the plan's layers, outside the ranking's cut,
    and the budget holds all of its channels; a budget below it is refused."""
    f, task, run = problem
    from medyate.algo.plan import plan_training
    specs = {s.name: s for s in f.layers}
    head = f.layers[-1].name
    tp = plan_training(f, task.x_train, task.y_train, elements=specs[head].total_cost + 50,
                       ranking=run, always=[head])
    assert head in tp.layers and tp.budget_elements >= specs[head].total_cost
    assert len(tp.layers) >= 2
    with pytest.raises(MedyateError, match="trained in full"):
        plan_training(f, task.x_train, task.y_train, elements=specs[head].total_cost - 1,
                      ranking=run, always=[head])


def test_oracle_with_a_head_trains_it_for_every_layer(problem):
    f, task, run = problem
    head = f.layers[-1].name
    orc = layer_oracle(f, task, 100, epochs=2, batch=16, lr=0.1, always=[head])
    assert head not in orc and set(orc) == {s.name for s in f.layers[:-1]}
    for eng in f.engines[-len(orc):]:
        names = [l.name for l in eng.layers]
        assert head in names
        hi = names.index(head)
        for sel in eng.selections_seen:
            assert sorted(c for l, c in sel if l == hi) == list(range(f.layers[-1].channels))


def _reach_mem_for(order):
    # backward to an early layer is dear: 5000 bytes per layer of reach
    def for_layers(layers, train_bias):
        reach = len(order) - min(order.index(n) for n in layers)
        return lambda b: 5_000 * reach + 4 * b
    return for_layers


def test_deepest_fit_leaves_out_early_layers(problem):
    from medyate.algo.plan import plan_deepest_fit
    f, task, run = problem
    order = [s.name for s in f.layers]
    mem_for = _reach_mem_for(order)
    # a RAM where backward through the whole network does not fit but a
    # shorter reach does: the plan keeps only layers from deeper in
    ram = 5_000 * (len(order) - 1) + 400
    with pytest.raises(MedyateError):
        plan_training(f, task.x_train, task.y_train, ram=ram, memory_fn_for=mem_for,
                      ranking=run, coverage=1.0)
    p, k = plan_deepest_fit(f, task.x_train, task.y_train, run, ram=ram,
                            memory_fn_for=mem_for, coverage=1.0)
    # the first layer does not fit even alone (its reach): left out, with or
    # without leading layers cut, and the rest is from deeper in
    assert order[0] in p.too_big
    assert set(p.layers) <= set(order[k:]) - set(p.too_big) and order[0] not in p.layers
    assert p.memory_bytes <= ram
    with pytest.raises(MedyateError, match="smallest feasible RAM budget is"):
        plan_deepest_fit(f, task.x_train, task.y_train, run, ram=4_000,
                         memory_fn_for=mem_for, coverage=1.0)


def test_deepest_fit_leaves_out_a_layer_too_big_for_one_channel(problem):
    """A layer whose own fixed cost (its weights in RAM) exceeds the budget even
    with one channel is left out of the ranking; the layers before it, which
    fit, stay rankable instead of the pre-selection being cut above it."""
    from medyate.algo.plan import layers_too_big, plan_deepest_fit
    f, task, run = problem
    order = [s.name for s in f.layers]
    big = order[-2]

    def mem_for(layers, train_bias):
        return lambda b: 1_000 + (50_000 if big in layers else 0) + 4 * b

    ram = 1_000 + 4 * sum(s.total_cost for s in f.layers) + 10
    assert layers_too_big(f, ram, mem_for) == [big]
    p, k = plan_deepest_fit(f, task.x_train, task.y_train, run, ram=ram,
                            memory_fn_for=mem_for, coverage=1.0)
    assert big not in p.layers and p.too_big == [big]
    assert k == 0 and set(p.layers) == set(order) - {big}
    assert big not in p.scores
    assert p.memory_bytes <= ram


def test_smallest_feasible_budget_counts_the_head_trained_in_full(problem):
    """The budget an infeasible plan names is one that plans: one channel of
    the cheapest layer beside the always-trained head in full, not the head's
    own single channel."""
    from medyate.algo.plan import plan_deepest_fit, smallest_feasible_ram
    f, task, run = problem
    order = [s.name for s in f.layers]
    head = order[-1]
    mem_for = _reach_mem_for(order)
    least, layer = smallest_feasible_ram(f, mem_for, always=[head])
    assert layer != head
    with pytest.raises(MedyateError, match=f"smallest feasible RAM budget is .*{least} bytes.*"
                                           f"one channel of {layer}.*besides {head} trained in full"):
        plan_deepest_fit(f, task.x_train, task.y_train, run, ram=least - 1,
                         memory_fn_for=mem_for, coverage=1.0, always=[head])
    p, _ = plan_deepest_fit(f, task.x_train, task.y_train, run, ram=least,
                            memory_fn_for=mem_for, coverage=1.0, always=[head])
    assert head in p.layers and p.memory_bytes <= least
