"""`plan.json`: the training plan, readable and editable by people.

Example:
    {
      "format": 1,
      "model": "models/mbv2-tiny.onnx",
      "model_sha256": "9f2c...",
      "layers": ["/features/3/conv/0/Conv", "..."],   # pre-selected (trainable) layers
      "budget_elements": 24000,                       # paper-style channel budget
      "budget_bytes": 96000,                          # = 4 * budget_elements (informative)
      "ram_bytes": 262144,                            # the RAM budget it was solved for, if any
      "train_bias": true,
      "bias_only": ["<layer>"],                       # optional: of layers, train only the bias
      "batch": 8,
      "epochs": 10,
      "lr": 0.05,
      "warmup_epochs": 5,
      "schedule": "cosine",
      "strategy": "medyate",                          # how selections are drawn each epoch
      "temperature": 1.0,
      "layer_metric": "lara",
      "seed": 0,
      "importance": {"<layer>": [per-channel floats]}, # optional: initial channel importance
      "selection": [[layer_index, channel], ...],       # optional: initial / static selection
      "data": {"source": "fmnist-5to9", "sha256": "...",  # the data set it was made on
               "n_train": 1000, "n_test": 500, "data_seed": 0, "classes": [...],
               "sample_shape": [1, 28, 28], "mean": [0.286], "std": [0.353]},
      "head": {                                         # only when the head was replaced
        "layer": "classifier", "model_outputs": 1000, "classes": 5, "seed": 0,
        "init": "uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias 0",
        "weights_sha256": "4b1e..."}                    # of the new head's parameters
    }

A model whose output count differs from the task's classes is trained with a new
classifier head (`ir.head`): `medyate plan` makes it and records it under "head";
build and train make it again from that record (same seed, same weights, checked
against weights_sha256), so every command trains and exports the same model.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from ..errors import MedyateError
from ..ir.head import INIT as HEAD_INIT
from ..schema import (BUDGET_MAX, Batch, Budget, Epochs, Finite, LearningRate, Seed, Sha256, Strict,
                      Temperature, validate)
from ..strategy_names import PLAN_STRATEGIES as STRATEGIES

FORMAT = 1
SCHEDULES = ("cosine", "constant")
LAYER_METRICS = ("lara", "rgn")


@dataclass
class TrainPlan:
    model: str
    model_sha256: str
    layers: list[str]
    budget_elements: int
    train_bias: bool = True
    batch: int = 8
    epochs: int = 10
    lr: float = 0.05
    warmup_epochs: int = 5
    schedule: str = "cosine"
    strategy: str = "medyate"
    temperature: float = 1.0
    layer_metric: str = "lara"
    seed: int = 0
    ram_bytes: int | None = None
    importance: dict[str, list[float]] = field(default_factory=dict)
    selection: list[list[int]] = field(default_factory=list)
    # how lr was chosen: "given", or "range-test" (then the test's record:
    # lr_min_loss, lr, loss0, lrs, losses; algo.ranking.lr_range_test)
    lr_source: str = "given"
    lr_range_test: dict | None = None
    # the new classifier head, when the model's outputs differ from the task's
    # classes (`new_head`): layer, model_outputs, classes, seed, init, weights_sha256
    head: dict | None = None
    # the kernels' number format (planner.program.PRECISIONS): int8 runs a
    # quantized model on the int8 kernels (docs/ALGORITHM.md section 6)
    precision: str = "fp32"
    # the model input's static shape (N, C, H, W) the plan was made with: a model
    # with dynamic dimensions needs it given once (--input-shape, or the data's)
    input_shape: list[int] | None = None
    # the data set the plan was made on (data.record): train warns on other data
    # and reads an image folder with its normalisation
    data: dict | None = None
    # layers of `layers` whose weights stay frozen (in flash on the device):
    # only their bias trains, and no selection may name their channels
    bias_only: list[str] = field(default_factory=list)

    @property
    def budget_bytes(self) -> int:
        return 4 * self.budget_elements

    def to_json(self) -> str:
        d = {"format": FORMAT, **asdict(self), "budget_bytes": self.budget_bytes}
        bad = _nonfinite_fields(d)
        if bad:
            raise MedyateError("the plan has non-finite values (not JSON, and no plan to "
                               "train by): " + ", ".join(bad))
        # allow_nan=False: NaN/Infinity are not JSON; a guard behind the check above
        text = json.dumps(d, indent=2, allow_nan=False) + "\n"
        # what is written must be what load_plan reads back
        plan_from_dict(json.loads(text), "the plan to be written")
        return text

    def save(self, path) -> None:
        from ..outputs import atomic_write
        atomic_write(path, self.to_json(), "plan")


def _nonfinite_fields(value, where: str = "") -> list[str]:
    """Paths (field, field[i], field.key) of the NaN/inf floats in a JSON-like value."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{where} = {value}"]
    if isinstance(value, dict):
        return [b for k, v in value.items()
                for b in _nonfinite_fields(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        out = []
        for i, v in enumerate(value):
            out += _nonfinite_fields(v, f"{where}[{i}]")
            if len(out) > 5:
                return out[:5] + ["..."]
        return out
    return []


class LrRangeRecord(Strict):
    """The learning-rate range test a plan's lr came from (informative)."""
    lr_min_loss: Finite
    lr: Finite
    loss0: Finite
    lrs: list[Finite]
    losses: list[Finite]
    # what the sweep trained: every layer, or the session's subnetwork (new head)
    over: Literal["network", "trained subnetwork"] = "network"


class HeadRecord(Strict):
    """A classifier head replaced for the task's class count (`new_head`)."""
    layer: Annotated[str, Field(min_length=1)]
    model_outputs: Annotated[int, Field(ge=1)]
    classes: Annotated[int, Field(ge=2)]
    seed: Seed
    init: Literal[HEAD_INIT]
    weights_sha256: Sha256


class DataRecord(Strict):
    """The data set a plan was made on (`data.record.data_record`)."""
    source: Annotated[str, Field(min_length=1)]
    sha256: Sha256
    n_train: Annotated[int, Field(ge=1)]
    n_test: Annotated[int, Field(ge=1)]
    data_seed: Seed = 0
    classes: Annotated[list[str], Field(min_length=2)]
    sample_shape: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=3, max_length=3)]
    # (x - mean) / std on [0, 1] pixels, one value or one per channel; both
    # empty when float data was used as given
    mean: list[Finite] = []
    std: list[Annotated[float, Field(gt=0.0, allow_inf_nan=False)]] = []


class PlanSchema(Strict):
    """What plan.json may hold: the fields of `TrainPlan` (a test keeps the two
    equal), with their types and limits. What needs the model (layer names,
    channel counts) is checked by `check_plan_against`."""
    format: Literal[1] = FORMAT
    model: Annotated[str, Field(min_length=1)]
    model_sha256: Sha256
    layers: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    budget_elements: Budget
    # written for people (4 x budget_elements), ignored when read
    budget_bytes: Optional[Annotated[int, Field(ge=0)]] = None
    train_bias: bool = True
    batch: Batch = 8
    epochs: Epochs = 10
    lr: LearningRate = 0.05
    warmup_epochs: Annotated[int, Field(ge=0, le=1_000_000)] = 5
    schedule: Literal[SCHEDULES] = "cosine"
    strategy: Literal[STRATEGIES] = "medyate"
    temperature: Temperature = 1.0
    layer_metric: Literal[LAYER_METRICS] = "lara"
    seed: Seed = 0
    ram_bytes: Optional[Annotated[int, Field(ge=1, le=2 ** 32 - 1)]] = None
    importance: dict[str, list[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]]] = {}
    selection: list[Annotated[list[Annotated[int, Field(ge=0)]],
                              Field(min_length=2, max_length=2)]] = []
    lr_source: Literal["given", "range-test"] = "given"
    lr_range_test: Optional[LrRangeRecord] = None
    head: Optional[HeadRecord] = None
    precision: Literal["fp32", "int8"] = "fp32"
    input_shape: Optional[Annotated[list[Annotated[int, Field(ge=1, le=65535)]],
                                    Field(min_length=2, max_length=4)]] = None
    data: Optional[DataRecord] = None
    bias_only: list[Annotated[str, Field(min_length=1)]] = []

    @model_validator(mode="after")
    def _consistent(self):
        if len(set(self.layers)) != len(self.layers):
            dup = sorted({l for l in self.layers if self.layers.count(l) > 1})
            raise ValueError(f"layers names {', '.join(dup)} more than once")
        stray = [n for n in self.importance if n not in self.layers]
        if stray:
            raise ValueError(f"importance names layer(s) not in layers: {', '.join(stray)}")
        stray = [n for n in self.bias_only if n not in self.layers]
        if stray:
            raise ValueError(f"bias_only names layer(s) not in layers: {', '.join(stray)}")
        for k, (li, _) in enumerate(self.selection):
            if li >= len(self.layers):
                raise ValueError(f"selection[{k}] layer index {li} is out of range (the plan "
                                 f"has {len(self.layers)} layers, indices 0..{len(self.layers) - 1})")
            if self.layers[li] in self.bias_only:
                raise ValueError(f"selection[{k}] names a channel of {self.layers[li]}, which "
                                 "trains only its bias (bias_only)")
        return self


def plan_from_dict(raw, where: str) -> TrainPlan:
    """A TrainPlan from plan.json's parsed content, every field validated."""
    if not isinstance(raw, dict):
        raise MedyateError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("format", FORMAT) != FORMAT:
        raise MedyateError(f"{where}: format {raw.get('format')} is not supported "
                           f"(this medyate reads format {FORMAT})")
    v = validate(PlanSchema, raw, where)
    d = v.model_dump()
    d.pop("format")
    d.pop("budget_bytes")
    return TrainPlan(**d)


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_plan(path) -> TrainPlan:
    p = Path(path)
    if p.is_dir():
        raise MedyateError(f"plan file {p} is a directory")
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise MedyateError(f"plan file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MedyateError(f"cannot read plan file {path}: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MedyateError(f"plan file {path} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    return plan_from_dict(raw, f"plan file {path}")


def check_plan_model(plan: TrainPlan, graph, model_path=None) -> None:
    """The plan was made for the model file `graph` was imported from."""
    if graph.source_sha256 and plan.model_sha256 != graph.source_sha256:
        where = f" {model_path}" if model_path else ""
        raise MedyateError(f"the plan was made for another model: plan has sha256 "
                           f"{plan.model_sha256[:12]}..., model{where} has "
                           f"{graph.source_sha256[:12]}... (re-run `medyate plan`)")


def check_plan_against(plan: TrainPlan, graph, program=None, model_path=None) -> None:
    """The plan must describe this model: same file hash, existing layers,
    a budget that holds one channel, selection indices in range."""
    check_plan_model(plan, graph, model_path)
    names = {n.name: n for n in graph.nodes}
    bad = [l for l in plan.layers if l not in names]
    if bad:
        raise MedyateError("plan names unknown layer(s): " + ", ".join(bad))
    trainable = {n.name for n in graph.trainable_nodes()}
    frozen = [f"{l} ({names[l].op})" for l in plan.layers if l not in trainable]
    if frozen:
        raise MedyateError("plan layers must be trainable (Conv, Gemm): " + ", ".join(frozen))
    from ..ir.cost import input_channels
    channels = [int(input_channels(graph, names[l])) for l in plan.layers]
    for name, values in plan.importance.items():
        want = channels[plan.layers.index(name)]
        if len(values) != want:
            raise MedyateError(f"plan importance[{name!r}] has {len(values)} values; the layer "
                               f"has {want} input channels")
    for k, (li, c) in enumerate(plan.selection):
        if not 0 <= li < len(plan.layers):
            raise MedyateError(f"plan selection[{k}]: layer index {li} out of range "
                               f"(the plan has {len(plan.layers)} layers)")
        if not 0 <= c < channels[li]:
            raise MedyateError(f"plan selection[{k}]: channel {c} out of range for layer "
                               f"{plan.layers[li]} ({channels[li]} input channels)")


def new_head(graph, n_classes: int, seed: int, log=print):
    """(graph, head record for plan.json): `graph` itself and None when its outputs
    are the task's `n_classes`, else a copy with a new classifier head (ir.head:
    uniform ±1/sqrt(fan_in) weights from `seed`, bias 0), which is said through `log`."""
    import numpy as np

    from ..ir.head import find_head, head_sha256, n_outputs, replace_head
    have = n_outputs(graph)
    if have == n_classes:
        return graph, None
    new = replace_head(graph, n_classes, seed)
    head, _ = find_head(new)
    rec = {"layer": head.name, "model_outputs": have, "classes": n_classes, "seed": seed,
           "init": HEAD_INIT, "weights_sha256": head_sha256(new)}
    if log is not None:
        fan_in = int(np.prod(head.params["weight"].shape[1:]))
        log(f"replacing the head: {have} -> {n_classes} classes (the model's outputs -> "
            f"the task's classes): {head.op} {head.name} gets new weights uniform in "
            f"±1/sqrt({fan_in}) from seed {seed}, bias 0"
            f"{', int8 per channel' if new.is_quantized else ''}")
    return new, rec


def plan_head(plan: TrainPlan, graph, log=print):
    """`graph` with the head `plan` records (itself when the plan replaced none),
    made as `medyate plan` made it and checked to be bit-identical to it."""
    if plan.head is None:
        return graph
    from ..ir.head import find_head, head_sha256, n_outputs
    rec = plan.head
    head, _ = find_head(graph)
    have = n_outputs(graph)
    if head.name != rec["layer"] or have != rec["model_outputs"]:
        raise MedyateError(
            f"plan head: the plan replaced head {rec['layer']} of {rec['model_outputs']} "
            f"outputs, but the model's head is {head.name} with {have} outputs")
    new, _ = new_head(graph, rec["classes"], rec["seed"], log=None)
    got = head_sha256(new)
    if got != rec["weights_sha256"]:
        raise MedyateError(
            f"plan head: the new head made from seed {rec['seed']} has weights sha256 "
            f"{got[:12]}..., the plan recorded {rec['weights_sha256'][:12]}... (made by "
            "another numpy or medyate version, or edited); re-run `medyate plan`")
    if log is not None:
        log(f"replacing the head as the plan records: {have} -> {rec['classes']} classes "
            f"({head.name}, seed {rec['seed']}, weights sha256 {got[:12]}...)")
    return new
