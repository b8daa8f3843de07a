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
      "selection": [[layer_index, channel], ...]        # optional: initial / static selection
    }
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import MedyateError
from ..strategy_names import PLAN_STRATEGIES as STRATEGIES

FORMAT = 1


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
        return json.dumps(d, indent=2, allow_nan=False) + "\n"

    def save(self, path) -> None:
        Path(path).write_text(self.to_json())


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


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_plan(path) -> TrainPlan:
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise MedyateError(f"plan file {path} not found") from None
    except json.JSONDecodeError as exc:
        raise MedyateError(f"plan file {path} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise MedyateError(f"plan file {path}: expected a JSON object")
    if raw.get("format", FORMAT) != FORMAT:
        raise MedyateError(f"plan file {path}: format {raw.get('format')} is not supported "
                           f"(this medyate reads format {FORMAT})")
    raw.pop("format", None)
    raw.pop("budget_bytes", None)
    known = set(TrainPlan.__dataclass_fields__)
    extra = sorted(set(raw) - known)
    if extra:
        raise MedyateError(f"plan file {path}: unknown field(s) {', '.join(extra)}")
    missing = [k for k in ("model", "model_sha256", "layers", "budget_elements") if k not in raw]
    if missing:
        raise MedyateError(f"plan file {path}: missing field(s) {', '.join(missing)}")
    plan = TrainPlan(**raw)
    problems = []
    if not isinstance(plan.layers, list) or not all(isinstance(x, str) for x in plan.layers):
        problems.append("layers must be a list of layer names")
    for key in ("budget_elements", "batch", "epochs", "warmup_epochs", "seed"):
        v = getattr(plan, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            problems.append(f"{key} must be a non-negative integer (got {v!r})")
    if isinstance(plan.batch, int) and plan.batch < 1:
        problems.append("batch must be at least 1")
    if not isinstance(plan.lr, (int, float)) or plan.lr <= 0:
        problems.append(f"lr must be a positive number (got {plan.lr!r})")
    if plan.schedule not in ("cosine", "constant"):
        problems.append(f"schedule must be cosine or constant (got {plan.schedule!r})")
    if plan.strategy not in STRATEGIES:
        problems.append(f"strategy must be one of {', '.join(STRATEGIES)} (got {plan.strategy!r})")
    if problems:
        raise MedyateError(f"plan file {path}:\n" + "\n".join(f"  - {p}" for p in problems))
    return plan


def check_plan_against(plan: TrainPlan, graph, program=None, model_path=None) -> None:
    """The plan must describe this model: same file hash, existing layers,
    a budget that holds one channel, selection indices in range."""
    if graph.source_sha256 and plan.model_sha256 != graph.source_sha256:
        where = f" {model_path}" if model_path else ""
        raise MedyateError(f"the plan was made for another model: plan has sha256 "
                           f"{plan.model_sha256[:12]}..., model{where} has "
                           f"{graph.source_sha256[:12]}... (re-run `medyate plan`)")
    names = {n.name: n for n in graph.nodes}
    bad = [l for l in plan.layers if l not in names]
    if bad:
        raise MedyateError("plan names unknown layer(s): " + ", ".join(bad))
    if program is not None:
        for k, pair in enumerate(plan.selection):
            if len(pair) != 2:
                raise MedyateError(f"plan selection entry {k}: expected [layer_index, channel]")
            li, c = pair
            if not 0 <= li < len(program.layers):
                raise MedyateError(f"plan selection entry {k}: layer index {li} out of range "
                                   f"(the plan has {len(program.layers)} layers)")
            if not 0 <= c < program.layers[li].channels:
                raise MedyateError(f"plan selection entry {k}: channel {c} out of range for "
                                   f"layer {program.layers[li].name} "
                                   f"({program.layers[li].channels} input channels)")
