"""The on-device session in QEMU against the host simulation: same plan, same
seed, same selections -> the same losses; the device learns; its RAM stays
within the plan's report; a killed session resumes from its checkpoint."""
import json
import shutil

import numpy as np
import pytest

from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx
from medyate.session.run import Progress, run_session

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and gcc-arm-none-eabi")


class Quiet(Progress):
    def __init__(self):
        self.live = False

    def line(self, text):
        pass


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from medyate.algo.plan import make_plan
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=96, n_test=64)
    plan, _ = make_plan(path, graph, task, ram="160KiB", board="qemu-mps2-an500", batch=8,
                        epochs=3, lr=0.05, seed=1, ranking_samples=64)
    return path, graph, task, plan, tmp_path_factory.mktemp("sess")


@pytest.fixture(scope="module")
def both(setup):
    from medyate.algo.trainer import HostEngineFactory
    from medyate.session.device_session import device_session
    path, graph, task, plan, tmp = setup
    dev = device_session(graph, plan, task, tmp / "qemu", board="qemu-mps2-an500", port=None,
                         epochs=3, resume=False, progress=Quiet(), title="t")
    host = run_session(graph, plan, task, HostEngineFactory(graph), tmp / "host", 3,
                       progress=Quiet())
    read = lambda d: [json.loads(l) for l in (tmp / d / "metrics.jsonl").read_text().splitlines()]
    return dev, host, read("qemu"), read("host")


def test_device_matches_host_simulation(both):
    _, _, dev, host = both
    assert len(dev) == len(host) == 3
    for d, h in zip(dev, host):
        assert d["channels"] == h["channels"] and d["elements"] == h["elements"]
        assert d["loss"] == pytest.approx(h["loss"], rel=1e-4)
        assert d["test_loss"] == pytest.approx(h["test_loss"], rel=1e-4)
        assert d["train_acc"] == pytest.approx(h["train_acc"], abs=1.5 / 96)


def test_device_session_improves_on_pretrained(both):
    dev_summary, _, dev, _ = both
    assert dev_summary["after"]["test_acc"] > dev_summary["before"]["test_acc"] + 0.2
    assert all(r["instructions"] > 0 for r in dev)


def test_device_ram_within_plan_report(both, setup):
    from medyate.session.memory_report import memory_report
    dev_summary, _, dev, _ = both
    _, _, _, plan, tmp = setup
    rep = memory_report(tmp / "qemu" / "firmware" / "build" / "firmware.elf", board="qemu-mps2-an500")
    mem = dev_summary["memory"]
    # static RAM of the image (arena, weights, firmware data) + measured stack use
    used_stack = max(r["stack_high_water"] for r in dev)
    assert 0 < used_stack <= rep["stack"]["bound"] <= mem["stack"]
    static_image = rep["ram"]["data"] + rep["ram"]["bss"]
    assert static_image + used_stack <= mem["total"]
    # firmware's own static data (outside arena and weights) within the planner's bound
    assert static_image - mem["arena"] - mem["trainable_weights"] <= mem["static"]
    assert mem["total"] <= plan.ram_bytes


def test_finetuned_onnx_matches_device(both, setup):
    import onnxruntime as ort
    _, _, _, plan, tmp = setup
    task = setup[2]
    sess = ort.InferenceSession(str(tmp / "qemu" / "finetuned.onnx"))
    logits = sess.run(None, {sess.get_inputs()[0].name: task.x_test})[0]
    acc = float((logits.argmax(1) == task.y_test).mean())
    dev = [json.loads(l) for l in (tmp / "qemu" / "metrics.jsonl").read_text().splitlines()]
    assert acc == pytest.approx(dev[-1]["test_acc"], abs=1.5 / len(task.y_test))


def test_killed_session_resumes_to_the_same_weights(setup, tmp_path):
    """Host simulation: stop after epoch 2 of 3 (as a Ctrl-C would), resume, and
    end with the weights of an uninterrupted run."""
    from medyate.algo.trainer import HostEngineFactory
    from medyate.ir.onnx_import import load_onnx as load
    _, graph, task, plan, _ = setup

    class StopAfter(Quiet):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def line(self, text):
            if text.startswith(f"epoch {self.n}/"):
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_session(graph, plan, task, HostEngineFactory(graph), tmp_path / "a", 3,
                    progress=StopAfter(2))
    assert len((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()) == 2
    run_session(graph, plan, task, HostEngineFactory(graph), tmp_path / "a", 3, resume=True,
                progress=Quiet())
    run_session(graph, plan, task, HostEngineFactory(graph), tmp_path / "b", 3, progress=Quiet())
    ga, gb = load(str(tmp_path / "a" / "finetuned.onnx")), load(str(tmp_path / "b" / "finetuned.onnx"))
    for na, nb in zip(ga.nodes, gb.nodes):
        for k in na.params:
            np.testing.assert_array_equal(na.params[k], nb.params[k])
    la = [json.loads(l)["loss"] for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(l)["loss"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert la == lb


def test_device_session_resumes_after_kill(both, setup, tmp_path):
    """QEMU: stop after epoch 2 of 3, start a fresh QEMU with --resume: the
    checkpointed weights are written back and the run ends where an
    uninterrupted one does."""
    from medyate.ir.onnx_import import load_onnx as load
    from medyate.session.device_session import device_session
    _, graph, task, plan, tmp = setup

    class StopAfter(Quiet):
        def line(self, text):
            if text.startswith("epoch 2/"):
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        device_session(graph, plan, task, tmp_path / "r", board="qemu-mps2-an500", port=None,
                       epochs=3, resume=False, progress=StopAfter(), title="t")
    device_session(graph, plan, task, tmp_path / "r", board="qemu-mps2-an500", port=None,
                   epochs=3, resume=True, progress=Quiet(), title="t")
    ga, gb = load(str(tmp_path / "r" / "finetuned.onnx")), load(str(tmp / "qemu" / "finetuned.onnx"))
    for na, nb in zip(ga.nodes, gb.nodes):
        for k in na.params:
            np.testing.assert_allclose(na.params[k], nb.params[k], rtol=0, atol=0)
