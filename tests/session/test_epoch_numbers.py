"""Epochs count from 1 everywhere: the console, metrics.jsonl, summary.json,
the checkpoint (its history and its epoch, the last one completed) and the
best-epoch weights; a checkpoint of the older format, whose history counted
from 0, is still resumed, and then counts from 1 too."""
import io
import json
import re
import shutil

import numpy as np
import pytest

from medyate.algo.trainer import HostEngineFactory
from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx
from medyate.planner.plan import TrainPlan, file_sha256
from medyate.session.checkpoint import CHECKPOINT, _content_sha256
from medyate.session.run import BEST, Progress, run_session, split_validation


class Said(Progress):
    def __init__(self):
        self.live, self.bar, self.lines = False, False, []

    def line(self, text):
        self.lines.append(text)


@pytest.fixture(scope="module")
def setup():
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("digits", n_train=40, n_test=16)
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-2:], budget_elements=2000,
                     batch=8, epochs=3, lr=0.01, warmup_epochs=0, seed=1)
    return graph, task, plan


def _meta(run):
    with np.load(run / CHECKPOINT, allow_pickle=False) as z:
        return json.loads(z["meta"].tobytes())


def test_every_output_counts_epochs_from_1(setup, tmp_path):
    graph, task, plan = setup
    train, val = split_validation(task, 0.25, plan.seed)
    said = Said()
    s = run_session(graph, plan, train, HostEngineFactory(graph), tmp_path, 3, progress=said,
                    val=val)
    shown = [int(m.group(1)) for l in said.lines for m in [re.match(r"epoch (\d+)/3:", l)] if m]
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    meta = _meta(tmp_path)
    assert shown == [r["epoch"] for r in rows] == [h["epoch"] for h in meta["history"]] == [1, 2, 3]
    assert meta["epoch"] == 3 and s["last"]["epoch"] == 3
    best = max(rows, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert s["exported_epoch"] == s["validation"]["best_epoch"] == best["epoch"] >= 1
    with np.load(tmp_path / BEST, allow_pickle=False) as z:
        assert int(z["epoch"]) == best["epoch"]


def test_a_checkpoint_counting_from_0_still_resumes(setup, tmp_path):
    graph, task, plan = setup
    factory = HostEngineFactory(graph)
    run_session(graph, plan, task, factory, tmp_path / "a", 1, progress=Said())
    run_session(graph, plan, task, factory, tmp_path / "ref", 2, progress=Said())
    # as the older medyate wrote it: version 1, history from 0
    p = tmp_path / "a" / CHECKPOINT
    with np.load(p, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    meta = json.loads(a.pop("meta").tobytes())
    meta["version"] = 1
    meta.pop("board")
    meta["history"] = [{**r, "epoch": r["epoch"] - 1} for r in meta["history"]]
    meta["content_sha256"] = _content_sha256(meta, a)
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **a)
    p.write_bytes(buf.getvalue())
    run_session(graph, plan, task, factory, tmp_path / "a", 2, resume=True, progress=Said())
    rows = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(l) for l in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and _meta(tmp_path / "a")["version"] == 2
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref]
