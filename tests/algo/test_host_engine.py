"""The algorithm through the host build of the C engine, on a tiny real model."""
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "torch_tiny.onnx"

try:
    from medyate.engine.host import HostEngine  # noqa: F401
    from medyate.ir.onnx_import import load_onnx
    from medyate.algo.trainer import HostEngineFactory
    _IMPORT_ERROR = None
except Exception as e:  # the engine or importer may be missing in a partial checkout
    _IMPORT_ERROR = e

pytestmark = pytest.mark.skipif(_IMPORT_ERROR is not None or not FIXTURE.exists(),
                                reason=f"host engine not available: {_IMPORT_ERROR}")

from medyate.algo.ranking import layer_scores, preselect, ranking_run  # noqa: E402
from medyate.algo.strategies import STRATEGIES, run_strategy  # noqa: E402

BUDGET = 1500


@pytest.fixture(scope="module")
def problem():
    """Labels from the model itself on random inputs, then a re-initialised
    classifier: fine-tuning has something to recover."""
    graph = load_onnx(str(FIXTURE))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160,) + tuple(graph.shapes[graph.input][1:])).astype(np.float32)
    y = HostEngine(graph.copy()).forward(x).argmax(axis=1)
    student = graph.copy()
    fc = student.trainable_nodes()[-1]
    fc.params["weight"] = (0.05 * rng.normal(size=fc.params["weight"].shape)).astype(np.float32)
    task = SimpleNamespace(x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:],
                           classes=int(graph.shapes[graph.output][1]))
    factory = HostEngineFactory(student)
    run = ranking_run(factory, task.x_train, task.y_train, samples=64, batch=16, lr=0.01)
    return factory, task, run


def test_ranking_on_real_engine(problem):
    factory, task, run = problem
    assert run.steps == 4
    for m in ("rgn", "rgn_norm", "lara"):
        s = layer_scores(run, m)
        assert set(s) == {l.name for l in factory.layers}
        assert all(v >= 0 and math.isfinite(v) for v in s.values())
    # the re-initialised classifier is where the gradient is
    assert max(layer_scores(run, "lara"), key=layer_scores(run, "lara").get) == "/fc/Gemm"
    assert preselect(layer_scores(run, "rgn"), specs=factory.layers, budget=BUDGET)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_strategy_through_host_engine(problem, name):
    factory, task, run = problem
    start = factory([], 0, False).evaluate(task.x_test, task.y_test)[0]
    hist = run_strategy(factory, task, name, 3, 16, 0.05, 0, BUDGET, ranking=run)
    assert hist[-1]["test_loss"] < start
    for rec in hist:
        assert rec["bytes"] > 0
        if name not in ("full", "last"):
            assert rec["elements"] <= BUDGET


def test_plan_with_planner_figures(problem):
    from medyate.algo.plan import plan_training, planner_memory_fn
    factory, task, run = problem
    p = plan_training(factory, task.x_train, task.y_train, ram="300KiB",
                      memory_fn_for=planner_memory_fn(factory.graph), ranking=run)
    assert p.memory_bytes <= 300 * 1024
    eng = factory(p.layers, p.budget_elements, False)
    assert eng.memory()["total"] == p.memory_bytes
    with pytest.raises(Exception, match="smallest feasible"):
        plan_training(factory, task.x_train, task.y_train, ram="1KiB",
                      memory_fn_for=planner_memory_fn(factory.graph), ranking=run)
