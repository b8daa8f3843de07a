"""A session that diverges (a genuinely too large learning rate on a bundled
model, host engine): the epoch is undone and redone at a lower learning rate;
if it keeps diverging, a clear error that leaves the last good checkpoint and
outputs as they were. Nothing non-finite reaches metrics.jsonl, the checkpoint,
summary.json or finetuned.onnx."""
import json
import math
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from medyate.algo.strategies import epoch_nonfinite
from medyate.data import bundled_model, load_task
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.session.run import CHECKPOINT, METRICS, Progress, run_session


class Said(Progress):
    def __init__(self):
        self.live = False
        self.lines = []

    def line(self, text):
        self.lines.append(text)


@pytest.fixture(scope="module")
def setup():
    from medyate.algo.trainer import HostEngineFactory
    from medyate.algo.plan import make_plan
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=64, n_test=32)
    plan, _ = make_plan(path, graph, task, elements=3000, batch=8, epochs=2,
                        ranking_samples=32)
    return graph, task, plan, HostEngineFactory(graph)


def _all_finite(run_dir):
    for line in (run_dir / METRICS).read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in metrics.jsonl"))
    json.loads((run_dir / "summary.json").read_text(),
               parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    model = onnx.load(str(run_dir / "finetuned.onnx"))
    assert all(np.all(np.isfinite(numpy_helper.to_array(t))) for t in model.graph.initializer)


def test_diverging_epoch_is_redone_at_a_lower_lr(setup, tmp_path, monkeypatch):
    # On mbv2-tiny lr 3e38 (near fp32's largest) overflows fp32 in the first epoch; lr 0.01 is
    # an ordinary one (the back-off is made large so that one retry gets there).
    from medyate.algo import strategies
    monkeypatch.setattr(strategies, "EPOCH_BACKOFF", 1e-40 / 3)
    graph, task, plan, factory = setup
    plan.lr = 3e38
    said = Said()
    summary = run_session(graph, plan, task, factory, tmp_path, progress=said)
    notes = [l for l in said.lines if "diverged" in l]
    assert len(notes) == 1 and "epoch 1 diverged at lr 3e+38" in notes[0]
    assert "redoing the epoch at lr 0.01" in notes[0]
    rows = [json.loads(l) for l in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["retries"] == 1 and rows[0]["lr"] == pytest.approx(0.01)
    assert rows[1]["lr"] == pytest.approx(0.01)       # the lower lr stays
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["test_loss"]) for r in rows)
    assert "stopped" not in summary
    _all_finite(tmp_path)


def test_divergence_past_the_retries_keeps_the_last_good_epoch(setup, tmp_path, monkeypatch):
    # Two ordinary epochs, then the schedule jumps to lr 3e38 (near fp32's
    # largest), which diverges at every retry (x0.25 three times).
    from medyate.algo import strategies
    graph, task, plan, factory = setup
    plan.lr = 0.05
    ordinary = strategies.Run.epoch_lr
    monkeypatch.setattr(strategies.Run, "epoch_lr", lambda self, e: ordinary(self, e)
                        if e < 2 else 3e38 * self.lr_scale)
    said = Said()
    with pytest.raises(MedyateError, match=r"training diverged: epoch 3 diverged 4 times.*"
                                           r"checkpoint and outputs of epoch 2"):
        run_session(graph, plan, task, factory, tmp_path, epochs=3, progress=said)
    assert sum("diverged at lr" in l for l in said.lines) == 3
    rows = [json.loads(l) for l in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    # the checkpoint is epoch 2's, and finetuned.onnx holds its weights
    z = np.load(tmp_path / CHECKPOINT, allow_pickle=False)
    assert json.loads(z["meta"].tobytes())["epoch"] == 2
    init = {t.name: numpy_helper.to_array(t)
            for t in onnx.load(str(tmp_path / "finetuned.onnx")).graph.initializer}
    for i, name in enumerate(plan.layers):
        np.testing.assert_array_equal(z[f"weight_{i}"], init[name + ".weight"])
    assert "diverged" in json.loads((tmp_path / "summary.json").read_text())["stopped"]
    _all_finite(tmp_path)


def test_a_non_finite_count_or_loss_is_divergence_whatever_the_other_says():
    w = {"a": (np.ones(3), np.zeros(1))}
    ok = SimpleNamespace(loss=0.5, channel_stats=np.ones(2))
    assert epoch_nonfinite(ok, 0.4, w) is None
    counted = SimpleNamespace(loss=0.5, channel_stats=np.ones(2), nonfinite=3)
    assert "3 non-finite values reported by the engine" in epoch_nonfinite(counted, 0.4, w)
    nan_loss = SimpleNamespace(loss=float("nan"), channel_stats=np.ones(2), nonfinite=0)
    assert "training loss nan" in epoch_nonfinite(nan_loss, 0.4, w)
    assert "test loss inf" in epoch_nonfinite(ok, float("inf"), w)
    assert "weights of 1 layers" in epoch_nonfinite(ok, 0.4, {"a": (np.array([np.nan]),
                                                                     np.zeros(1))})
