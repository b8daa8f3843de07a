"""--val-split: a seeded, fixed, per-class hold-out of the training data; the
session evaluates every epoch on it and exports the best epoch's weights."""
import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from medyate.data import bundled_model, load_task
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.session.run import BEST, METRICS, Progress, run_session, split_validation


class Said(Progress):
    def __init__(self):
        self.live = False
        self.lines = []

    def line(self, text):
        self.lines.append(text)


def test_split_is_seeded_per_class_and_disjoint():
    task = load_task("fmnist-5to9", n_train=100, n_test=10)
    sub, (xv, yv) = split_validation(task, 0.2, seed=3)
    again, (xv2, _) = split_validation(task, 0.2, seed=3)
    np.testing.assert_array_equal(xv, xv2)
    assert len(yv) == 20 and len(sub.y_train) == 80
    assert np.bincount(yv).tolist() == [4] * 5          # 20 per class -> 4 each
    rows = {r.tobytes() for r in task.x_train}
    assert {r.tobytes() for r in xv} | {r.tobytes() for r in sub.x_train} == rows
    assert not {r.tobytes() for r in xv} & {r.tobytes() for r in sub.x_train}
    other, _ = split_validation(task, 0.2, seed=4)
    assert not np.array_equal(other.x_train, sub.x_train)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(MedyateError, match="val-split"):
            split_validation(task, bad, seed=0)


def test_session_exports_the_best_validation_epoch(tmp_path):
    from medyate.algo.plan import make_plan
    from medyate.algo.trainer import HostEngineFactory
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=80, n_test=40)
    plan, _ = make_plan(path, graph, task, elements=3000, batch=8, epochs=3, lr=0.05,
                        ranking_samples=32, log=lambda m: None)
    train, val = split_validation(task, 0.25, plan.seed)
    factory = HostEngineFactory(graph)
    said = Said()
    run_session(graph, plan, train, factory, tmp_path, epochs=2, progress=said, val=val)
    summary = run_session(graph, plan, train, factory, tmp_path, epochs=3, resume=True,
                          progress=said, val=val)
    rows = [json.loads(l) for l in (tmp_path / METRICS).read_text().splitlines()]
    assert len(rows) == 3 and all(0 <= r["val_acc"] <= 1 for r in rows)
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert summary["validation"]["best_epoch"] == best["epoch"] == summary["exported_epoch"]
    assert summary["after"]["test_acc"] == best["test_acc"]
    assert summary["last"]["test_acc"] == rows[-1]["test_acc"]
    assert any(f"finetuned.onnx: epoch {best['epoch']} of 3" in l for l in said.lines)
    # finetuned.onnx holds the best epoch's weights, and evaluates to its test accuracy
    z = np.load(tmp_path / BEST, allow_pickle=False)
    assert int(z["epoch"]) == best["epoch"]
    init = {t.name: numpy_helper.to_array(t)
            for t in onnx.load(str(tmp_path / "finetuned.onnx")).graph.initializer}
    for i, name in enumerate(plan.layers):
        np.testing.assert_array_equal(z[f"weight_{i}"], init[name + ".weight"])
    from medyate.engine.host import HostEngine
    exported = load_onnx(str(tmp_path / "finetuned.onnx"))
    _, acc = HostEngine(exported).evaluate(train.x_test, train.y_test)
    assert acc == pytest.approx(best["test_acc"])
