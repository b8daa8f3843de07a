"""Training that cannot silently go wrong: a diverging ranking run is detected and
redone at a lower learning rate; nothing non-finite reaches plan.json."""
import math

import numpy as np
import pytest

from medyate.algo.plan import plan_training
from medyate.algo.ranking import layer_scores, ranking_run
from medyate.data import bundled_model, load_task
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.planner.plan import TrainPlan


@pytest.fixture(scope="module")
def mbv2():
    from medyate.algo.trainer import HostEngineFactory
    graph = load_onnx(str(bundled_model("mbv2-tiny")))
    task = load_task("fmnist-5to9", n_train=64, n_test=32)
    return HostEngineFactory(graph), task


def test_diverging_ranking_run_is_redone_at_a_lower_lr(mbv2):
    # On mbv2-tiny lr 3e38 (near fp32's largest) overflows fp32 in the first steps; a back-off large
    # enough to reach an ordinary lr in one retry gives a finite run.
    factory, task = mbv2
    said = []
    run = ranking_run(factory, task.x_train, task.y_train, samples=32, batch=8, lr=3e38,
                      backoff=1e-40/3, log=said.append)
    assert run.retries == 1 and run.lr == pytest.approx(0.01)
    assert len(said) == 1 and "diverged at lr 3e+38" in said[0] and "lr 0.01" in said[0]
    assert math.isfinite(run.loss)
    assert all(np.all(np.isfinite(e)) for e in run.energy.values())
    assert all(math.isfinite(v) for v in layer_scores(run, "lara").values())


def test_ranking_run_diverging_at_every_lr_is_an_error(mbv2):
    factory, task = mbv2
    said = []
    with pytest.raises(MedyateError, match=r"diverged at every learning rate tried "
                                           r"\(3e\+38 down to 3e\+36, 3 runs\).*not finite"):
        ranking_run(factory, task.x_train, task.y_train, samples=16, batch=8, lr=3e38,
                    retries=2, log=said.append)
    assert len(said) == 2


def test_plan_lowers_the_session_lr_with_the_ranking_run(mbv2):
    factory, task = mbv2
    # first epoch lr = 1.5e39 / 5 = 3e38 diverges, 0.01 does not: the schedule x1e-40/3
    rk = ranking_run(factory, task.x_train, task.y_train, samples=32, batch=8, lr=3e38,
                     backoff=1e-40/3, log=lambda m: None)
    tp = plan_training(factory, task.x_train, task.y_train, elements=2000, lr=1.5e39,
                       epochs=10, batch=8, ranking=rk)
    assert tp.ranking.retries == 1
    assert tp.lr == pytest.approx(0.05)
    assert all(math.isfinite(v) for v in tp.scores.values())
    assert all(math.isfinite(v) for imp in tp.importance.values() for v in imp)


def test_plan_writer_refuses_non_finite_values(tmp_path):
    plan = TrainPlan(model="m.onnx", model_sha256="0" * 64, layers=["a"], budget_elements=10,
                     lr=float("nan"), importance={"a": [1.0, float("inf"), 2.0]})
    with pytest.raises(MedyateError, match=r"lr = nan, importance\.a\[1\] = inf"):
        plan.save(tmp_path / "plan.json")
    assert not (tmp_path / "plan.json").exists()


def test_lr_range_test_suggests_an_lr_below_where_the_loss_blows_up(mbv2):
    from medyate.algo.ranking import LR_RANGE_DIVISOR, lr_range_test
    factory, task = mbv2
    t = lr_range_test(factory, task.x_train, task.y_train, samples=64, probe=16, batch=8)
    assert len(t.lrs) == len(t.losses) >= 2 and all(map(math.isfinite, t.losses))
    assert t.lrs == sorted(t.lrs) and t.lrs[0] == pytest.approx(1e-4)
    # the sweep went on until the loss blew up (or the sweep's end): the
    # suggestion is the lowest-loss lr divided, so below the sweep's last lr
    assert min(t.losses) < t.loss0
    assert t.lr_min_loss == t.lrs[int(np.argmin(t.losses))]
    assert t.lr == pytest.approx(t.lr_min_loss / LR_RANGE_DIVISOR)
    assert t.lr < t.lrs[-1]


def test_plan_without_lr_takes_the_range_test_and_records_it(tmp_path):
    from medyate.algo.plan import make_plan
    from medyate.planner.plan import load_plan
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=64, n_test=32)
    said = []
    plan, _ = make_plan(path, graph, task, elements=2000, batch=8, ranking_samples=64,
                        log=said.append)
    assert plan.lr_source == "range-test" and plan.lr == plan.lr_range_test["lr"]
    assert any("range test" in s for s in said)
    plan.save(tmp_path / "plan.json")
    back = load_plan(tmp_path / "plan.json")
    assert back.lr == plan.lr and back.lr_range_test == plan.lr_range_test
    given, _ = make_plan(path, graph, task, elements=2000, batch=8, ranking_samples=64,
                         lr=0.02, log=said.append)
    assert given.lr_source == "given" and given.lr == 0.02 and given.lr_range_test is None


def test_range_test_over_a_selection_trains_only_that_selection(mbv2):
    from medyate.algo.ranking import lr_range_test
    factory, task = mbv2
    made = []

    class Recording:
        layers = factory.layers

        def __call__(self, layers, budget, train_bias):
            made.append((list(layers), budget, train_bias))
            return factory(layers, budget, train_bias)

    specs = {s.name: s for s in factory.layers}
    last, prev = factory.layers[-1].name, factory.layers[-2].name
    sel = [(last, c) for c in range(specs[last].channels)] + [(prev, 0), (prev, 3)]
    t = lr_range_test(Recording(), task.x_train, task.y_train, samples=64, probe=16, batch=8,
                      selection=sel, train_bias=False)
    assert made == [([prev, last], specs[last].total_cost + 2 * specs[prev].cost, False)]
    assert t.over == "trained subnetwork" and t.as_dict()["over"] == "trained subnetwork"
    assert len(t.losses) >= 2 and t.lr < t.lrs[-1]


def test_plan_with_a_new_head_sweeps_the_trained_subnetwork(tmp_path):
    from medyate.algo.plan import make_plan
    from medyate.planner.plan import load_plan
    from medyate.session.model import load_for_task
    task = load_task("fmnist-5to9", n_train=64, n_test=32)
    path, graph, head = load_for_task(str(bundled_model("mbv2-tiny")), task=task, seed=0,
                                      log=lambda s: None)
    assert head is not None                  # 5 classes against the model's 10 outputs
    said = []
    plan, tp = make_plan(path, graph, task, elements=2000, batch=8, ranking_samples=64,
                         head=head, log=said.append)
    assert plan.lr_source == "range-test" and plan.lr_range_test["over"] == "trained subnetwork"
    assert plan.lr == plan.lr_range_test["lr"] == tp.lr
    assert any("for the new head: range test over the trained subnetwork" in s for s in said)
    plan.save(tmp_path / "plan.json")
    assert load_plan(tmp_path / "plan.json").lr_range_test == plan.lr_range_test
