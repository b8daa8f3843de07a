"""A session that stops part-way (Ctrl-C, a device that stops answering, a
serial failure) says so on a line of its own, gives the exact command that
continues it, and still writes training.png, summary.json and finetuned.onnx
of its last completed epoch. That command, run, continues where the
checkpoint left off."""
import io
import json
import shlex

import numpy as np
import pytest

from medyate.cli import main
from medyate.data import bundled_model
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.planner.plan import TrainPlan, file_sha256

DATA = ["--data", "digits", "--n-train", "32", "--n-test", "16"]


@pytest.fixture
def plan_file(tmp_path):
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-3:], budget_elements=3000,
                     batch=8, epochs=3, lr=0.01, warmup_epochs=0, seed=1)
    p = tmp_path / "plan.json"
    plan.save(p)
    return p


class Tty(io.StringIO):
    """stderr as a terminal: the session draws its live progress counter."""
    def isatty(self):
        return True


def _stop_in_epoch(monkeypatch, epoch, exc):
    """The host engine raises `exc` part-way through its `epoch`-th epoch
    (1-based), after drawing some progress, as Ctrl-C or a dying link would."""
    from medyate.engine.host import HostEngine
    real = HostEngine.train_epoch
    calls = {"n": 0}

    def train_epoch(self, x, y, batch, lr, order, progress=None):
        calls["n"] += 1
        if calls["n"] == epoch:
            if progress:
                progress(8, len(x))
            raise exc
        return real(self, x, y, batch, lr, order, progress=progress)
    monkeypatch.setattr(HostEngine, "train_epoch", train_epoch)


def _weights(path):
    return {n.name: n.params["weight"] for n in load_onnx(str(path)).trainable_nodes()}


@pytest.mark.parametrize("exc, code, said", [
    (KeyboardInterrupt(), 130, "interrupted (Ctrl-C) during epoch 2 of 3"),
    (MedyateError("no answer from the device after 5 tries"), 1,
     "stopped: no answer from the device after 5 tries during epoch 2 of 3"),
    (OSError(5, "Input/output error"), 1, "the device link failed"),
])
def test_interrupted_session_keeps_its_last_epoch_and_says_how_to_continue(
        plan_file, tmp_path, monkeypatch, exc, code, said):
    out = tmp_path / "run"
    ref = tmp_path / "ref"
    # the reference: the same session, one epoch, uninterrupted
    assert main(["train", "mbv2-tiny", "--plan", str(plan_file), *DATA, "--epochs", "1",
                 "--out", str(ref)]) == 0

    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    with monkeypatch.context() as m:
        _stop_in_epoch(m, 2, exc)
        rc = main(["train", "mbv2-tiny", "--plan", str(plan_file), *DATA, "--out", str(out)])
    text = err.getvalue()
    assert rc == code, text
    # the counter of epoch 2 was on screen; what follows starts on a new line
    assert "epoch 2/3 [" in text
    said_on = [line for line in text.split("\n") if said in line]
    assert said_on and all("epoch 2/3 [" not in line for line in said_on), text
    # the exact command to continue
    cmd = f"medyate train --resume {shlex.quote(str(out))}"
    assert cmd in text
    # the outputs of epoch 1, exactly as an uninterrupted one-epoch run's
    s = json.loads((out / "summary.json").read_text())
    assert s["completed_epochs"] == 1 and said.split(" during")[0] in s["interrupted"]
    assert s["after"] == json.loads((ref / "summary.json").read_text())["after"]
    assert (out / "training.png").stat().st_size > 0
    w, w_ref = _weights(out / "finetuned.onnx"), _weights(ref / "finetuned.onnx")
    assert all(np.array_equal(w[k], w_ref[k]) for k in w_ref)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1

    # the printed command continues the session to its end
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert main(shlex.split(cmd)[1:]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    assert "interrupted" not in json.loads((out / "summary.json").read_text())


def test_interrupted_before_any_epoch_leaves_nothing(plan_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _stop_in_epoch(monkeypatch, 1, KeyboardInterrupt())
    rc = main(["train", "mbv2-tiny", "--plan", str(plan_file), *DATA, "--out", str(out)])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert not out.exists()


def test_a_device_that_dies_mid_session_keeps_its_last_epoch(tmp_path):
    """The device (the firmware built for the host board, a native process over
    pipes, as in test_device_reset) is killed in epoch 2 and does not come back:
    the session ends with epoch 1's outputs and says how to continue."""
    import shutil
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake")
    from medyate.planner.plan import TrainPlan, file_sha256
    from medyate.protocol.dataset_image import write_dataset_image
    from medyate.protocol.device import Device
    from medyate.protocol.link import Link
    from medyate.session.device_session import DeviceFactory, DeviceTrainer
    from medyate.session.firmware import build_device_firmware
    from medyate.session.run import Interrupted, Progress, run_session
    from test_device_reset import NativeDevice

    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-3:], budget_elements=3000,
                     batch=8, epochs=3, strategy="trady", seed=4)
    from medyate.data import load_task
    task = load_task("digits", n_train=32, n_test=16)
    program, build = build_device_firmware(graph, plan, "host", tmp_path / "fw",
                                           log=lambda *_: None)
    write_dataset_image(tmp_path / "data.bin", task.x_train, task.y_train, task.x_test,
                        task.y_test, classes=task.n_classes)
    dev = NativeDevice(build.elf, tmp_path / "data.bin")
    lines = []

    class Watch(Progress):
        def __init__(self):
            self.live, self.bar = False, False

        def line(self, text):
            lines.append(text)
            if text.startswith("epoch 1/3"):
                dev.stop()                   # gone before epoch 2, for good

    link = Link(dev.start(), timeout=0.5, retries=1)
    trainer = DeviceTrainer(Device(link), program, task, {"total": 0})
    out = tmp_path / "run"
    try:
        with pytest.raises(Interrupted) as e:
            run_session(graph, plan, task, DeviceFactory(trainer, plan), out, 3,
                        progress=Watch(), board="host")
    finally:
        dev.stop()
    msg = str(e.value)
    assert msg.startswith("stopped: ") and "during epoch 2 of 3" in msg
    assert "outputs (finetuned.onnx, training.png, summary.json) of epoch 1" in msg
    assert f"--resume {out}" in msg
    s = json.loads((out / "summary.json").read_text())
    m = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert s["completed_epochs"] == 1 and len(m) == 1
    assert s["after"]["test_acc"] == m[0]["test_acc"] and (out / "training.png").exists()
    # finetuned.onnx holds the weights the device had after epoch 1 (the checkpoint's)
    with np.load(out / "checkpoint.npz", allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes())
        ckpt = {name: z[f"weight_{i}"] for i, name in enumerate(meta["layers"])}
    w = _weights(out / "finetuned.onnx")
    assert all(np.array_equal(w[k], ckpt[k]) for k in ckpt)


def test_ctrl_c_inside_the_host_engine_stops_after_the_epoch(plan_file, tmp_path, monkeypatch):
    """A real SIGINT delivered while the engine's C code runs (it arrives in
    the progress callback C calls), where a KeyboardInterrupt could not leave
    the callback: the epoch ends, is saved, and the session stops there."""
    import os
    import signal
    from medyate.engine.host import HostEngine
    real = HostEngine.train_epoch
    calls = {"n": 0}

    def train_epoch(self, x, y, batch, lr, order, progress=None):
        calls["n"] += 1
        hits = {"k": 0}

        def prog(done, total):
            hits["k"] += 1
            if calls["n"] == 2 and hits["k"] == 2:
                os.kill(os.getpid(), signal.SIGINT)      # Ctrl-C, mid-epoch
            if progress:
                progress(done, total)
        return real(self, x, y, batch, lr, order, progress=prog)
    monkeypatch.setattr(HostEngine, "train_epoch", train_epoch)
    err = Tty()
    monkeypatch.setattr("sys.stderr", err)
    out = tmp_path / "run"
    # Python's own Ctrl-C handling, as in a terminal: a pytest-xdist worker
    # ignores SIGINT, and the session rightly leaves another handler alone
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        rc = main(["train", "mbv2-tiny", "--plan", str(plan_file), *DATA, "--out", str(out)])
        restored = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)
    text = err.getvalue()
    assert rc == 130, text
    assert "Ctrl-C: stopping when epoch 2 ends" in text and "cffi" not in text
    assert "interrupted (Ctrl-C) after epoch 2 of 3" in text
    assert f"medyate train --resume {shlex.quote(str(out))}" in text
    assert json.loads((out / "summary.json").read_text())["completed_epochs"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert restored is signal.default_int_handler
