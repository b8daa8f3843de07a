"""`medyate train --resume RUN/` takes the model, plan, data, board and the
other options from the run directory when the command line does not repeat
them; it refuses a board other than the checkpoint's and never continues a
device (QEMU) session in the host simulation."""
import json
import os

import numpy as np
import pytest

from medyate.cli import main
from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx
from medyate.planner.plan import TrainPlan, file_sha256


@pytest.fixture
def setup(tmp_path):
    """A plan file and a user .npz data set, both given by relative paths."""
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-3:], budget_elements=3000,
                     batch=8, epochs=3, lr=0.01, warmup_epochs=0, seed=2)
    work = tmp_path / "work"
    work.mkdir()
    plan.save(work / "plan.json")
    t = load_task("digits", n_train=40, n_test=20)
    np.savez(work / "mine.npz", x_train=t.x_train, y_train=t.y_train, x_test=t.x_test,
             y_test=t.y_test)
    return work


def _train(*extra):
    return main(["train", "mbv2-tiny", "--plan", "plan.json", "--data", "mine.npz",
                 "--n-train", "30", *extra])


def _weights(path):
    return {n.name: n.params["weight"] for n in load_onnx(str(path)).trainable_nodes()}


def _epochs(run):
    return len((run / "metrics.jsonl").read_text().splitlines())


def test_resume_needs_only_the_run_directory(setup, tmp_path, monkeypatch):
    monkeypatch.chdir(setup)
    assert _train("--out", "full") == 0
    assert _train("--epochs", "1", "--out", "part") == 0
    # the plan file and the working directory are gone; the run keeps its own copy
    os.remove("plan.json")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", str(setup / "part"), "--epochs", "3"]) == 0
    assert _epochs(setup / "part") == 3
    w, ref = _weights(setup / "part" / "finetuned.onnx"), _weights(setup / "full" / "finetuned.onnx")
    assert all(np.array_equal(w[k], ref[k]) for k in ref)
    rec = json.loads((setup / "part" / "run.json").read_text())
    assert rec["data"] == str(setup / "mine.npz") and rec["n_train"] == 30
    assert rec["board"] == "host" and rec["epochs"] == 3


def test_resume_keeps_the_recorded_epochs(setup, monkeypatch):
    monkeypatch.chdir(setup)
    assert _train("--epochs", "2", "--out", "run") == 0
    assert main(["train", "--resume", "run"]) == 0
    assert _epochs(setup / "run") == 2      # not the plan's 3


def test_resume_on_another_board_is_refused(setup, monkeypatch, capsys):
    monkeypatch.chdir(setup)
    assert _train("--epochs", "1", "--out", "run") == 0
    before = (setup / "run" / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", "run", "--board", "qemu-mps2-an500", "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "trained on host" in err and "--board qemu-mps2-an500" in err
    assert (setup / "run" / "metrics.jsonl").read_text() == before


def _as_if_trained_on(run, board, keep_record=True):
    """The run directory of the same session trained on `board` (its
    checkpoint re-signed, as the session would have written it)."""
    import io

    from medyate.session.checkpoint import CHECKPOINT, _content_sha256
    with np.load(run / CHECKPOINT, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    meta = json.loads(a.pop("meta").tobytes())
    meta["board"] = board
    meta["content_sha256"] = _content_sha256(meta, a)
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **a)
    (run / CHECKPOINT).write_bytes(buf.getvalue())
    rec = json.loads((run / "run.json").read_text())
    rec["board"] = board
    (run / "run.json").write_text(json.dumps(rec))
    if not keep_record:
        (run / "run.json").unlink()


@pytest.mark.parametrize("keep_record", [True, False])
def test_a_qemu_session_is_not_continued_on_the_host(setup, monkeypatch, keep_record):
    monkeypatch.chdir(setup)
    assert _train("--epochs", "1", "--out", "run") == 0
    _as_if_trained_on(setup / "run", "qemu-mps2-an500", keep_record)
    called = {}

    def device_session(graph, plan, task, out, **kw):
        called.update(kw)
        return {"before": {"test_acc": 0.0}, "after": {"test_acc": 0.0}}
    monkeypatch.setattr("medyate.session.device_session.device_session", device_session)
    args = [] if keep_record else ["mbv2-tiny", "--plan", "plan.json", "--data", "mine.npz",
                                   "--n-train", "30"]
    assert main(["train", *args, "--resume", "run", "--epochs", "2"]) == 0
    assert called["board"] == "qemu-mps2-an500" and called["resume"] is True
    # and asking for the host is refused
    assert main(["train", *args, "--resume", "run", "--board", "host"]) == 1


def test_a_checkpoint_refuses_another_board_in_the_library(setup, monkeypatch):
    from medyate.algo.trainer import HostEngineFactory
    from medyate.errors import MedyateError
    from medyate.planner.plan import load_plan
    from medyate.session.run import run_session
    monkeypatch.chdir(setup)
    assert _train("--epochs", "1", "--out", "run") == 0
    plan = load_plan("plan.json")
    graph = load_onnx(str(bundled_model("mbv2-tiny")))
    task = load_task("mine.npz", n_train=30)
    with pytest.raises(MedyateError, match="trained on host, not qemu-mps2-an500"):
        run_session(graph, plan, task, HostEngineFactory(graph), setup / "run", 2, resume=True,
                    board="qemu-mps2-an500")


def test_a_new_session_still_needs_model_plan_and_data(setup, monkeypatch, capsys):
    monkeypatch.chdir(setup)
    assert main(["train", "--plan", "plan.json", "--out", "run"]) == 1
    err = capsys.readouterr().err
    assert "MODEL" in err and "--data" in err and not (setup / "run").exists()


def test_a_run_without_a_record_says_what_to_give(setup, monkeypatch, capsys):
    monkeypatch.chdir(setup)
    assert _train("--epochs", "1", "--out", "run") == 0
    (setup / "run" / "run.json").unlink()
    (setup / "run" / "plan.json").unlink()
    capsys.readouterr()
    assert main(["train", "--resume", "run", "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "MODEL" in err and "--plan" in err and "--data" in err
    # the checkpoint still gives the board; the rest as given
    assert _train("--resume", "run", "--epochs", "2") == 0 and _epochs(setup / "run") == 2
