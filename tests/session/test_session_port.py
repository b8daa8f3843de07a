"""`medyate train --port URL` drives a device that is already running (here a
QEMU started by the test and reached through its socket URL, as a board would
be through /dev/ttyACM0)."""
import json
import shutil
import subprocess
import sys

import pytest

from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and gcc-arm-none-eabi")

MEDYATE = [sys.executable, "-m", "medyate.cli"]


def test_train_through_a_port(tmp_path):
    from medyate.planner.plan import TrainPlan, file_sha256
    from medyate.protocol.dataset_image import write_dataset_image
    from medyate.session.firmware import build_device_firmware
    from medyate.session.qemu import QemuMachine

    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    names = [n.name for n in graph.trainable_nodes()][-3:]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=names,
                     budget_elements=3000, batch=8, epochs=1, strategy="trady", seed=3)
    plan.save(tmp_path / "plan.json")
    task = load_task("digits", n_train=32, n_test=16)
    _, build = build_device_firmware(graph, plan, "qemu-mps2-an500", tmp_path / "fw",
                                     log=lambda *_: None)
    write_dataset_image(tmp_path / "data.bin", task.x_train, task.y_train, task.x_test,
                        task.y_test, classes=task.n_classes)
    with QemuMachine(build.elf, tmp_path / "data.bin") as m:
        m.serial.close()          # the session connects on its own, as to a board
        r = subprocess.run(MEDYATE + ["train", "mbv2-tiny", "--plan", str(tmp_path / "plan.json"),
                                      "--data", "digits", "--n-train", "32", "--n-test", "16",
                                      "--board", "qemu-mps2-an500",
                                      "--port", f"socket://127.0.0.1:{m.port}",
                                      "--out", str(tmp_path / "run")],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert m.wait(timeout=10) == 0     # the session shut the device down
    rec = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rec) == 1 and rec[0]["instructions"] > 0 and rec[0]["channels"] > 0


def test_port_to_a_device_built_for_another_plan(tmp_path):
    from medyate.planner.plan import TrainPlan, file_sha256
    from medyate.session.firmware import build_device_firmware
    from medyate.session.qemu import QemuMachine

    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    names = [n.name for n in graph.trainable_nodes()][-3:]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=names,
                     budget_elements=3000, batch=8, epochs=1, strategy="trady")
    _, build = build_device_firmware(graph, plan, "qemu-mps2-an500", tmp_path / "fw",
                                     log=lambda *_: None)
    plan.budget_elements = 2000           # the host now expects another image
    plan.save(tmp_path / "plan.json")
    with QemuMachine(build.elf) as m:
        m.serial.close()
        r = subprocess.run(MEDYATE + ["train", "mbv2-tiny", "--plan", str(tmp_path / "plan.json"),
                                      "--data", "digits", "--n-train", "32", "--n-test", "16",
                                      "--board", "qemu-mps2-an500",
                                      "--port", f"socket://127.0.0.1:{m.port}",
                                      "--out", str(tmp_path / "run")],
                           capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert "runs another model or plan" in r.stderr and "Traceback" not in r.stderr
