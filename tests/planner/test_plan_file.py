"""plan.json: validation with clear errors, and plans that do not fit the model."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from medyate.data import bundled_model
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.planner.arena import plan_arena
from medyate.planner.plan import TrainPlan, check_plan_against, file_sha256, load_plan
from medyate.planner.program import lower

MEDYATE = [sys.executable, "-m", "medyate.cli"]


@pytest.fixture(scope="module")
def model():
    path = bundled_model("mbv2-tiny")
    return path, load_onnx(str(path))


@pytest.fixture
def good(model, tmp_path):
    path, graph = model
    names = [n.name for n in graph.trainable_nodes()][-4:]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=names,
                     budget_elements=5000)
    p = tmp_path / "plan.json"
    plan.save(p)
    return p


def _edit(p, **kw):
    d = json.loads(p.read_text())
    d.update(kw)
    p.write_text(json.dumps(d))
    return p


def test_round_trip(good):
    plan = load_plan(good)
    assert plan.budget_elements == 5000 and plan.budget_bytes == 20000
    assert json.loads(good.read_text())["budget_bytes"] == 20000


@pytest.mark.parametrize("edit,msg", [
    (dict(budget_elements=-3), r"budget_elements must be at least 0 \(got -3\)"),
    (dict(batch=0), "batch must be at least 1"),
    (dict(lr=0), r"lr must be greater than 0\.0 \(got 0\)"),
    (dict(strategy="magic"), "strategy must be one of"),
    (dict(colour="blue"), "colour is not a known field"),
    (dict(format=99), "format 99 is not supported"),
])
def test_invalid_fields(good, edit, msg):
    with pytest.raises(MedyateError, match=msg):
        load_plan(_edit(good, **edit))


def test_not_json(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text("{ nope")
    with pytest.raises(MedyateError, match="not valid JSON: line 1"):
        load_plan(p)


def test_unknown_layer(good, model):
    plan = load_plan(_edit(good, layers=["/no/such/Conv"]))
    with pytest.raises(MedyateError, match="unknown layer.*/no/such/Conv"):
        check_plan_against(plan, model[1])


def test_other_model_hash(good, model):
    plan = load_plan(_edit(good, model_sha256="0" * 64))
    with pytest.raises(MedyateError, match="made for another model"):
        check_plan_against(plan, model[1])


def test_channel_index_out_of_range(good, model):
    plan = load_plan(_edit(good, selection=[[0, 1], [1, 9999]]))
    prog = lower(model[1].copy(), plan.layers)
    with pytest.raises(MedyateError, match=r"selection\[1\]: channel 9999 out of range"):
        check_plan_against(plan, model[1], prog)
    with pytest.raises(MedyateError, match="layer index 7 is out of range"):
        load_plan(_edit(good, selection=[[7, 0]]))


def test_budget_too_small(good, model):
    plan = load_plan(_edit(good, budget_elements=2))
    prog = lower(model[1].copy(), plan.layers)
    with pytest.raises(MedyateError, match="too small: the cheapest channel"):
        plan_arena(prog, plan.budget_elements)


def test_build_cli_reports_bad_plan(good, tmp_path):
    _edit(good, model_sha256="f" * 64)
    r = subprocess.run(MEDYATE + ["build", "mbv2-tiny", "--plan", str(good), "--board", "host",
                                  "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert r.returncode == 1
    assert "made for another model" in r.stderr and "Traceback" not in r.stderr


def test_infeasible_ram_names_smallest_feasible(model, tmp_path):
    r = subprocess.run(MEDYATE + ["plan", "mbv2-tiny", "--data", "digits", "--n-train", "64",
                                  "--n-test", "32", "--ram", "20KiB", "--out",
                                  str(tmp_path / "p.json")], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    assert "smallest feasible" in r.stderr.lower() and "Traceback" not in r.stderr
