"""`medyate train --port` takes the link's frame size and retry count, so a
session on a noisy line can use smaller frames and more resends: the values
reach the Link and the Device, and bad values stop the command at parse time."""
from types import SimpleNamespace

import pytest

from medyate.cli import main
from medyate.data import bundled_model
from medyate.planner.plan import TrainPlan, file_sha256
from medyate.protocol import spec


@pytest.fixture
def plan_file(tmp_path):
    from medyate.ir.onnx_import import load_onnx
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-4:], budget_elements=5000)
    p = tmp_path / "plan.json"
    plan.save(p)
    return p


def _train(plan_file, out, *extra):
    return ["train", "mbv2-tiny", "--plan", str(plan_file), "--data", "digits",
            "--n-train", "16", "--n-test", "8", "--board", "nucleo-f746",
            "--port", "loop://", "--out", str(out), *extra]


@pytest.fixture
def seen(monkeypatch):
    """The Link's retries and the Device's payload limit as the session built
    them; the session stops right after (no device answers on loop://)."""
    got = {}

    class Stop(Exception):
        pass

    class FakeLink:
        def __init__(self, ser, **kw):
            got["retries"] = kw["retries"]

    class FakeDevice:
        def __init__(self, link, max_payload=None):
            got["max_payload"] = max_payload
            raise Stop

    monkeypatch.setattr("medyate.protocol.link.Link", FakeLink)
    monkeypatch.setattr("medyate.protocol.device.Device", FakeDevice)
    # No firmware build: the options' path to the link is what is tested here.
    monkeypatch.setattr("medyate.session.firmware.build_device_firmware",
                        lambda *a, **k: (None, SimpleNamespace(elf=None)))
    monkeypatch.setattr("medyate.session.memory_report.memory_report", lambda *a, **k: {
        "flash": {"total": 0}, "ram": {"total": 0, "capacity": 0}})
    monkeypatch.setattr("medyate.planner.footprint.ram_footprint", lambda *a, **k: {})
    return got, Stop


def test_frame_size_and_retries_reach_the_link(plan_file, tmp_path, seen):
    got, Stop = seen
    with pytest.raises(Stop):
        main(_train(plan_file, tmp_path / "run", "--frame-size", "256", "--retries", "40"))
    assert got == {"retries": 40, "max_payload": 256}
    assert not (tmp_path / "run").exists()       # a run that never started leaves nothing


def test_defaults_are_the_device_limit_and_five_retries(plan_file, tmp_path, seen):
    got, Stop = seen
    with pytest.raises(Stop):
        main(_train(plan_file, tmp_path / "run"))
    assert got == {"retries": 5, "max_payload": None}


@pytest.mark.parametrize("extra,msg", [
    (["--frame-size", "8"], "--frame-size: must be at least 64"),
    (["--frame-size", str(spec.MAX_PAYLOAD + 1)], f"--frame-size: must be at most {spec.MAX_PAYLOAD}"),
    (["--retries", "-1"], "--retries: must be at least 0"),
    (["--retries", "two"], "--retries: must be an integer"),
])
def test_bad_link_option_is_a_usage_error(extra, msg, plan_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(_train(plan_file, tmp_path / "run", *extra))
    assert e.value.code == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
