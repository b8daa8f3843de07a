"""A device that restarts in the middle of a session (power glitch, watchdog)
loses at most the epoch in progress: the host notices, puts back the weights
of the last completed epoch and the selection, and redoes the epoch. The
device here is the firmware built for the host board (boards/host): a native
process over pipes; killing it and starting a new one is a restart."""
import json
import os
import subprocess

import numpy as np
import pytest

from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx
from medyate.session.run import Progress, run_session


class Quiet(Progress):
    def __init__(self, on_line=None):
        self.live = False
        self.on_line = on_line

    def line(self, text):
        if self.on_line:
            self.on_line(text)


class NativeDevice:
    def __init__(self, exe, dataset):
        self.exe, self.dataset, self.proc, self.starts = exe, dataset, None, 0

    def start(self):
        from medyate.protocol.transport import PipeSerial
        self.stop()
        self.proc = subprocess.Popen([str(self.exe)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     env=dict(os.environ, MEDYATE_DATASET=str(self.dataset)))
        self.starts += 1
        return PipeSerial(self.proc.stdout, self.proc.stdin, timeout=0.05)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    from medyate.planner.plan import TrainPlan, file_sha256
    from medyate.protocol.dataset_image import write_dataset_image
    from medyate.session.firmware import build_device_firmware
    tmp = tmp_path_factory.mktemp("reset")
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    names = [n.name for n in graph.trainable_nodes()][-4:]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=names,
                     budget_elements=4000, batch=8, epochs=3, strategy="medyate", seed=5)
    task = load_task("digits", n_train=64, n_test=32)
    program, build = build_device_firmware(graph, plan, "host", tmp / "fw", log=lambda *_: None)
    data = write_dataset_image(tmp / "data.bin", task.x_train, task.y_train, task.x_test,
                               task.y_test, classes=task.n_classes)
    return graph, plan, task, program, build.elf, tmp / "data.bin", tmp


def _session(native, out, kill_after_epoch=None, kill_in_epoch=None):
    from medyate.protocol.device import Device
    from medyate.protocol.link import Link
    from medyate.session.device_session import DeviceFactory, DeviceTrainer
    graph, plan, task, program, exe, data, _ = native
    dev = NativeDevice(exe, data)
    box = {"epoch": 0, "progress": 0}

    def on_progress(p):
        if box["trainer"].on_progress:
            box["trainer"].on_progress(int(p["done"]), int(p["total"]))
        box["progress"] += 1
        if kill_in_epoch is not None and box["epoch"] == kill_in_epoch and box["progress"] == 2:
            dev.stop()                                   # restart in the middle of an epoch

    def on_line(text):
        if text.startswith("epoch "):
            box["epoch"] = int(text.split()[1].split("/")[0]) + 1
            box["progress"] = 0
            if kill_after_epoch is not None and box["epoch"] == kill_after_epoch + 1:
                dev.stop()                               # restart between epochs

    link = Link(dev.start(), timeout=2.0, reconnect=dev.start, on_progress=on_progress)
    trainer = DeviceTrainer(Device(link), program, task, {"total": 0})
    box["trainer"] = trainer
    box["epoch"] = 1
    try:
        run_session(graph, plan, task, DeviceFactory(trainer, plan), out, 3,
                    progress=Quiet(on_line))
    finally:
        dev.stop()
    return trainer, dev, [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


def _weights(path):
    g = load_onnx(str(path))
    return {n.name: n.params["weight"] for n in g.trainable_nodes()}


@pytest.mark.parametrize("where", ["between", "during"])
def test_restart_loses_at_most_the_current_epoch(native, where):
    tmp = native[-1]
    clean_tr, clean_dev, clean = _session(native, tmp / "clean")
    assert clean_tr.resets == 0 and clean_dev.starts == 1
    kw = {"kill_after_epoch": 1} if where == "between" else {"kill_in_epoch": 3}
    tr, dev, hist = _session(native, tmp / where, **kw)
    assert dev.starts == 2 and tr.resets == 1          # it really restarted, and was noticed
    assert [r["loss"] for r in hist] == [r["loss"] for r in clean]
    assert [r["test_acc"] for r in hist] == [r["test_acc"] for r in clean]
    a, b = _weights(tmp / where / "finetuned.onnx"), _weights(tmp / "clean" / "finetuned.onnx")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
