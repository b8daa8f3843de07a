"""Divergence through the device code path (QEMU): a too large learning rate
makes the device's epoch non-finite; the host undoes it (writes the last good
weights back), lowers the learning rate and redoes it, exactly as the host
simulation does."""
import json
import shutil

import pytest

from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx
from medyate.session.run import METRICS, Progress, run_session

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and gcc-arm-none-eabi")


class Said(Progress):
    def __init__(self):
        self.live = False
        self.lines = []

    def line(self, text):
        self.lines.append(text)


def test_device_epoch_divergence_is_redone_like_the_host(tmp_path, monkeypatch):
    from medyate.algo import strategies
    monkeypatch.setattr(strategies, "EPOCH_BACKOFF", 1e-40 / 3)   # one retry, to lr 0.01
    from medyate.algo.trainer import HostEngineFactory
    from medyate.algo.plan import make_plan
    from medyate.session.device_session import device_session
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=32, n_test=16)
    plan, _ = make_plan(path, graph, task, ram="160KiB", board="qemu-mps2-an500", batch=8,
                        epochs=2, seed=1, ranking_samples=32)
    plan.lr = 3e38              # overflows fp32 in the first epoch (host and device)
    dev_said, host_said = Said(), Said()
    device_session(graph, plan, task, tmp_path / "qemu", board="qemu-mps2-an500", port=None,
                   epochs=2, resume=False, progress=dev_said, title="t")
    run_session(graph, plan, task, HostEngineFactory(graph), tmp_path / "host", 2,
                progress=host_said)
    read = lambda d: [json.loads(l) for l in (tmp_path / d / METRICS).read_text().splitlines()]
    dev, host = read("qemu"), read("host")
    notes = [l for l in dev_said.lines if "diverged" in l]
    assert notes and notes == [l for l in host_said.lines if "diverged" in l]
    assert [r["epoch"] for r in dev] == [1, 2]
    for d, h in zip(dev, host):
        assert d.get("retries") == h.get("retries") and d["lr"] == h["lr"] == pytest.approx(0.01)
        assert d["loss"] == pytest.approx(h["loss"], rel=1e-4)
        assert d["test_loss"] == pytest.approx(h["test_loss"], rel=1e-4)
