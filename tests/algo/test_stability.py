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
    # On mbv2-tiny (ReLU6 keeps activations bounded) lr 1e19 overflows fp32 in
    # the first steps, lr 1e18 does not: a genuine divergence, then a finite run.
    factory, task = mbv2
    said = []
    run = ranking_run(factory, task.x_train, task.y_train, samples=32, batch=8, lr=1e19,
                      log=said.append)
    assert run.retries == 1 and run.lr == pytest.approx(1e18)
    assert len(said) == 1 and "diverged at lr 1e+19" in said[0] and "1e+18" in said[0]
    assert math.isfinite(run.loss)
    assert all(np.all(np.isfinite(e)) for e in run.energy.values())
    assert all(math.isfinite(v) for v in layer_scores(run, "lara").values())


def test_ranking_run_diverging_at_every_lr_is_an_error(mbv2):
    factory, task = mbv2
    said = []
    with pytest.raises(MedyateError, match=r"diverged at every learning rate tried "
                                           r"\(1e\+30 down to 1e\+28, 3 runs\).*not finite"):
        ranking_run(factory, task.x_train, task.y_train, samples=16, batch=8, lr=1e30,
                    retries=2, log=said.append)
    assert len(said) == 2


def test_plan_lowers_the_session_lr_with_the_ranking_run(mbv2):
    factory, task = mbv2
    # first epoch lr = 5e19 / 5 = 1e19 diverges, 1e18 does not: the schedule /10
    tp = plan_training(factory, task.x_train, task.y_train, elements=2000, lr=5e19,
                       epochs=10, batch=8, ranking_samples=32, log=lambda m: None)
    assert tp.ranking.retries == 1
    assert tp.lr == pytest.approx(5e18)
    assert all(math.isfinite(v) for v in tp.scores.values())
    assert all(math.isfinite(v) for imp in tp.importance.values() for v in imp)


def test_plan_writer_refuses_non_finite_values(tmp_path):
    plan = TrainPlan(model="m.onnx", model_sha256="0" * 64, layers=["a"], budget_elements=10,
                     lr=float("nan"), importance={"a": [1.0, float("inf"), 2.0]})
    with pytest.raises(MedyateError, match=r"lr = nan, importance\.a\[1\] = inf"):
        plan.save(tmp_path / "plan.json")
    assert not (tmp_path / "plan.json").exists()
