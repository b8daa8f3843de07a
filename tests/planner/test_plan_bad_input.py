"""Hand-edited plan.json: every bad field ends in an error naming it, before
any work; the schema and the TrainPlan dataclass declare the same fields."""
import dataclasses
import json

import pytest

from medyate.data import bundled_model
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.planner.plan import PlanSchema, TrainPlan, check_plan_against, file_sha256, load_plan


@pytest.fixture(scope="module")
def model():
    path = bundled_model("mbv2-tiny")
    return path, load_onnx(str(path))


@pytest.fixture
def good(model, tmp_path):
    path, graph = model
    names = [n.name for n in graph.trainable_nodes()][-2:]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=names,
                     budget_elements=5000)
    p = tmp_path / "plan.json"
    plan.save(p)
    return p


def _edit(p, fn):
    d = json.loads(p.read_text())
    fn(d)
    p.write_text(json.dumps(d))
    return p


def _set(**kw):
    return lambda d: d.update(kw)


def _importance(values):
    return lambda d: d.update(importance={d["layers"][0]: values})


# Refused by load_plan: the file alone is wrong.
FILE_CASES = {
    "model_sha256 an int": (_set(model_sha256=1234), "model_sha256 must be a string"),
    "model_sha256 not hex": (_set(model_sha256="xyz"), "model_sha256 must be a SHA-256"),
    "budget beyond uint32": (_set(budget_elements=2 ** 32, budget_bytes=2 ** 34),
                             r"budget_elements must be at most 1073741823"),
    "negative importance": (_importance([-1.0, 2.0]), r"importance\[.*\]\[0\] must be at least 0"),
    "importance a string": (_set(importance="abc"), "importance must be an object"),
    "importance of another layer": (_set(importance={"/not/a/layer": [1.0]}),
                                    "importance names layer.s. not in layers"),
    "garbage selection": (_set(selection=[["a", "b"]]), r"selection\[0\]\[0\] must be an integer"),
    "selection not a pair": (_set(selection=[[0, 1, 2]]), r"selection\[0\] must have at most 2"),
    "selection layer out of range": (_set(selection=[[9, 0]]), "layer index 9 is out of range"),
    "temperature NaN": (_set(temperature=float("nan")), "temperature must be a finite number"),
    "temperature negative": (_set(temperature=-1.0), "temperature must be at least 0"),
    "temperature a string": (_set(temperature="hot"), "temperature must be a number"),
    "train_bias yes": (_set(train_bias="yes"), "train_bias must be true or false"),
    "lr true": (_set(lr=True), r"lr must be a number \(got True\)"),
    "lr Infinity": (_set(lr=float("inf")), "lr must be a finite number"),
    "lr 1e30": (_set(lr=1e30), "lr must be at most 10"),
    "batch beyond the protocol's uint16": (_set(batch=100000), "batch must be at most 65535"),
    "epochs zero": (_set(epochs=0), "epochs must be at least 1"),
    "seed beyond uint32": (_set(seed=2 ** 32), "seed must be at most 4294967295"),
    "NaN in importance": (_importance([float("nan")]), "must be a finite number"),
    "layers empty": (_set(layers=[]), "layers must have at least 1 item"),
    "layers a string": (_set(layers="conv"), "layers must be a list"),
    "layer twice": (lambda d: d.update(layers=[d["layers"][0]] * 2), "more than once"),
    "a list": (lambda d: (d.clear()), "model is required"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_plan_field_is_named(good, case):
    fn, msg = FILE_CASES[case]
    with pytest.raises(MedyateError, match=msg):
        load_plan(_edit(good, fn))


def test_plan_that_is_a_list(tmp_path):
    p = tmp_path / "plan.json"
    p.write_text("[1, 2]")
    with pytest.raises(MedyateError, match="expected a JSON object, got list"):
        load_plan(p)


def test_plan_that_is_a_directory(tmp_path):
    with pytest.raises(MedyateError, match="is a directory"):
        load_plan(tmp_path)


# Refused by check_plan_against: the file is well-formed but not for this model.
def _frozen_layer(graph):
    return next(n.name for n in graph.nodes if not n.trainable)


@pytest.mark.parametrize("case", ["short importance", "non-trainable layer",
                                  "channel out of range"])
def test_plan_not_for_this_model(good, model, case):
    graph = model[1]
    if case == "short importance":
        fn, msg = _importance([1.0, 2.0]), r"importance\[.*\] has 2 values; the layer has \d+"
    elif case == "non-trainable layer":
        fn = lambda d: d.update(layers=[_frozen_layer(graph)] + d["layers"][1:])  # noqa: E731
        msg = "plan layers must be trainable"
    else:
        fn, msg = _set(selection=[[1, 99999]]), r"selection\[0\]: channel 99999 out of range"
    plan = load_plan(_edit(good, fn))
    with pytest.raises(MedyateError, match=msg):
        check_plan_against(plan, graph)


def test_written_plan_never_holds_nan(model, tmp_path):
    path, graph = model
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[graph.trainable_nodes()[-1].name], budget_elements=10,
                     importance={graph.trainable_nodes()[-1].name: [float("nan")]})
    with pytest.raises(MedyateError, match="non-finite"):
        plan.save(tmp_path / "plan.json")
    assert not (tmp_path / "plan.json").exists()


def test_schema_declares_every_plan_field():
    """One list of fields: adding one to TrainPlan without the schema fails here."""
    fields = {f.name for f in dataclasses.fields(TrainPlan)}
    assert set(PlanSchema.model_fields) - {"format", "budget_bytes"} == fields
