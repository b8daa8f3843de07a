"""A model whose output count differs from the task's classes gets a new classifier
head, the same one in plan, build and train: `medyate plan` makes it and records it in
plan.json; build and train make it again from that record, bit-identical.

The bundled tiny models have 10 outputs; fmnist-5to9 has 5 classes."""
import json

import numpy as np
import pytest

from medyate.cli import main
from medyate.data import bundled_model, load_task
from medyate.errors import MedyateError
from medyate.ir.head import INIT, find_head, head_sha256
from medyate.ir.onnx_import import load_onnx
from medyate.planner.plan import load_plan
from medyate.session.model import load_for_task

DATA = ["--data", "fmnist-5to9", "--n-train", "40", "--n-test", "20"]


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    d = tmp_path_factory.mktemp("head")
    rc = main(["plan", "mcunet-tiny", *DATA, "--elements", "1500", "--epochs", "1",
               "--ranking-samples", "16", "--lr", "0.05", "--seed", "3",
               "--out", str(d / "plan.json")])
    assert rc == 0
    return d


def _head(graph):
    head, _ = find_head(graph)
    return head.params["weight"], head.params["bias"]


def test_plan_records_the_new_head(planned, capsys):
    rec = json.loads((planned / "plan.json").read_text())["head"]
    g = load_onnx(str(bundled_model("mcunet-tiny")))
    head, _ = find_head(g)
    assert rec["layer"] == head.name and rec["model_outputs"] == 10
    assert rec["classes"] == 5 and rec["seed"] == 3 and rec["init"] == INIT
    # the recorded head is the documented initialisation: uniform in ±1/sqrt(fan_in), bias 0
    _, graph, _ = load_for_task("mcunet-tiny", plan=load_plan(planned / "plan.json"), log=None)
    w, b = _head(graph)
    bound = 1 / np.sqrt(w.shape[1])
    assert w.shape == (5, head.params["weight"].shape[1]) and not b.any()
    assert np.abs(w).max() <= bound and w.std() > bound / 4
    assert head_sha256(graph) == rec["weights_sha256"]
    assert graph.shapes[graph.output] == (1, 5)


def test_build_and_train_make_the_plans_head(planned, capsys):
    plan = load_plan(planned / "plan.json")
    task = load_task("fmnist-5to9", n_train=40, n_test=20)
    made = [load_for_task("mcunet-tiny", task=task, plan=plan, log=None)[1] for _ in range(2)]
    fresh = load_for_task("mcunet-tiny", task=task, seed=3, log=None)
    for g in made + [fresh[1]]:
        for a, b in zip(_head(g), _head(made[0])):
            np.testing.assert_array_equal(a, b)
    assert fresh[2] == plan.head
    # train (host, 1 epoch): says so, and the fine-tuned model has the task's 5 classes
    capsys.readouterr()
    assert main(["train", "mcunet-tiny", "--plan", str(planned / "plan.json"), *DATA,
                 "--board", "host", "--out", str(planned / "run")]) == 0
    out = capsys.readouterr().out
    assert "replacing the head as the plan records: 10 -> 5 classes" in out
    tuned = load_onnx(str(planned / "run" / "finetuned.onnx"))
    w, _ = _head(tuned)
    assert tuned.shapes[tuned.output] == (1, 5) and w.shape[0] == 5
    # the new head is planned to train in full every epoch: in the plan's layers,
    # its cost in the budget, and its input channels moved from the plan's head
    # (all but those whose input is zero on every sample: no gradient)
    assert find_head(made[0])[0].name in plan.layers
    w0, _ = _head(made[0])
    moved = np.any(w != w0, axis=0)
    assert moved.mean() > 0.9, moved.mean()


def test_the_built_model_holds_the_plans_head(planned):
    # what `medyate build` generates (session.firmware.build_device_firmware without
    # the CMake step): the head's weights in model.c are the plan's, bit for bit
    import re

    from medyate.codegen import render
    from medyate.planner.arena import plan_arena
    from medyate.planner.program import lower
    plan = load_plan(planned / "plan.json")
    _, graph, _ = load_for_task("mcunet-tiny", plan=plan, log=None)
    program = lower(graph.copy(), plan.layers, plan.train_bias)
    plan_arena(program, plan.budget_elements)
    text = "\n".join(render(program).values())
    name = plan.head["layer"]
    m = re.search(re.escape(f"/* {name} weight [5, ") + r"(\d+)\] [^*]*\*/[^{]*\{([^}]*)\}", text)
    assert m, f"no weights of {name} in the generated sources"
    got = np.array([float(v.rstrip("f")) for v in m.group(2).replace("\n", " ").split(",")
                    if v.strip()], np.float32)
    w, _ = _head(graph)
    np.testing.assert_array_equal(got.reshape(w.shape), w.astype(np.float32))


def test_plan_says_it_replaces_the_head(tmp_path, capsys):
    # the console line, from the one place that loads a model for a task
    task = load_task("fmnist-5to9", n_train=10, n_test=10)
    said = []
    load_for_task("mbv2-tiny", task=task, seed=1, log=said.append)
    assert len(said) == 1 and said[0].startswith("replacing the head: 10 -> 5 classes")
    assert "seed 1" in said[0] and "bias 0" in said[0]
    # a task with the model's class count keeps the head
    said.clear()
    _, g, rec = load_for_task("mbv2-tiny", task=load_task("digits", n_train=10, n_test=10),
                              log=said.append)
    assert rec is None and said == [] and g.shapes[g.output] == (1, 10)


def test_a_plan_that_does_not_match_the_head_is_refused(planned, tmp_path):
    raw = json.loads((planned / "plan.json").read_text())
    task = load_task("fmnist-5to9", n_train=10, n_test=10)
    edited = dict(raw, head=dict(raw["head"], weights_sha256="0" * 64))
    (tmp_path / "a.json").write_text(json.dumps(edited))
    with pytest.raises(MedyateError, match="plan head: the new head made from seed 3"):
        load_for_task("mcunet-tiny", task=task, plan=load_plan(tmp_path / "a.json"))
    kept = dict(raw, head=None)
    (tmp_path / "b.json").write_text(json.dumps(kept))
    # a plan without a head record trains the model's own head, and says so
    said = []
    _, g, rec = load_for_task("mcunet-tiny", task=task, plan=load_plan(tmp_path / "b.json"),
                              log=said.append)
    assert rec is None and g.shapes[g.output] == (1, 10)
    assert len(said) == 1 and "keeps the model's head of 10 outputs" in said[0]
    digits = load_task("digits", n_train=10, n_test=10)
    with pytest.raises(MedyateError, match="the plan's head has 5"):
        load_for_task("mcunet-tiny", task=digits, plan=load_plan(planned / "plan.json"))
