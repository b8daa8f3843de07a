"""A device that restarts in the middle of a session (power glitch, watchdog)
loses at most the epoch in progress: the host notices, puts back the weights
of the last completed epoch and the selection, and redoes the epoch. The
device here is the firmware built for the host board (boards/host): a native
process over pipes; killing it and starting a new one is a restart. Both
paths: fp32 (the bundled mbv2-tiny) and int8 (the same model quantized, QDQ,
calibrated on the task's training samples; int8 activations and saved maps,
weights as codes of frozen per-channel scales, biases as int32 codes)."""
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


@pytest.fixture(scope="module", params=["fp32", "int8"])
def native(request, tmp_path_factory):
    from medyate.planner.plan import TrainPlan, file_sha256
    from medyate.protocol.dataset_image import write_dataset_image
    from medyate.session.dataset_placement import task_image
    from medyate.session.firmware import build_device_firmware
    precision = request.param
    tmp = tmp_path_factory.mktemp(f"reset-{precision}")
    task = load_task("digits", n_train=64, n_test=32)
    path = bundled_model("mbv2-tiny")
    extra = {}
    if precision == "int8":
        from medyate.ir.quantize import quantize_model
        quantize_model(path, tmp / "mbv2-tiny-int8.onnx", task.x_train)
        path = tmp / "mbv2-tiny-int8.onnx"
        # biases too: their int32 codes must come back as well as the weights'
        extra = dict(precision="int8", train_bias=True)
    graph = load_onnx(str(path))
    assert graph.is_quantized == (precision == "int8")
    names = [n.name for n in graph.trainable_nodes()][-4:]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=names,
                     budget_elements=4000, batch=8, epochs=3, strategy="medyate", seed=5,
                     **extra)
    program, build = build_device_firmware(graph, plan, "host", tmp / "fw", log=lambda *_: None)
    if precision == "int8":
        # the dataset image of an int8 model holds its input codes
        (tmp / "data.bin").write_bytes(task_image(program, task))
    else:
        write_dataset_image(tmp / "data.bin", task.x_train, task.y_train, task.x_test,
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


def _params(path):
    """The trained layers' parameters in real units: an int8 model's QDQ
    export dequantized (its codes times their frozen scales)."""
    g = load_onnx(str(path))
    return {(n.name, k): v for n in g.trainable_nodes() for k, v in n.params.items()}


@pytest.mark.parametrize("where", ["between", "during"])
def test_restart_loses_at_most_the_current_epoch(native, where):
    graph, plan, tmp = native[0], native[1], native[-1]
    clean_tr, clean_dev, clean = _session(native, tmp / "clean")
    assert clean_tr.resets == 0 and clean_dev.starts == 1
    kw = {"kill_after_epoch": 1} if where == "between" else {"kill_in_epoch": 3}
    tr, dev, hist = _session(native, tmp / where, **kw)
    assert dev.starts == 2 and tr.resets == 1          # it really restarted, and was noticed
    assert tr.info.input_s8 == (plan.precision == "int8")
    assert len(hist) == len(clean) == 3
    assert [r["loss"] for r in hist] == [r["loss"] for r in clean]
    assert [r["test_acc"] for r in hist] == [r["test_acc"] for r in clean]
    a, b = _params(tmp / where / "finetuned.onnx"), _params(tmp / "clean" / "finetuned.onnx")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))
    # and training moved them (the equality is not of two untouched models)
    before = _params(plan.model)
    assert any(np.any(a[(n, "weight")] != before[(n, "weight")]) for n in plan.layers)
    if plan.precision == "int8":
        assert graph.is_quantized and load_onnx(str(tmp / where / "finetuned.onnx")).is_quantized
        for n in plan.layers:
            w = a[(n, "weight")]
            s = graph.node(n).quant.weight_scale.astype(np.float32)
            s = s.reshape((-1,) + (1,) * (w.ndim - 1))
            np.testing.assert_array_equal(np.rint(w / s).astype(np.float32) * s, w)
