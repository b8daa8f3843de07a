"""What every file and option medyate reads must look like, checked in one
place: each file format declares one pydantic model (plan.json in
`planner/plan.py`, checkpoints in `session/checkpoint.py`, the commands'
options in `commands/options.py`), built from the constrained types below,
and `validate` turns a refusal into an error naming each offending field.

The limits that are not a matter of taste come from the serial protocol's
field widths (`protocol/spec.py`): a plan the host accepts must also fit the
frames a device is driven with."""
from __future__ import annotations

import math
import struct
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import MedyateError


def _field_max(message: str, name: str) -> int:
    from .protocol.spec import LAYOUT
    code = dict(LAYOUT[message].fields)[name]
    return 2 ** (8 * struct.calcsize("<" + code)) - 1


# --- limits of the protocol's fields
BATCH_MAX = _field_max("RUN_EPOCH", "batch")               # uint16
SEED_MAX = _field_max("RUN_EPOCH", "seed")                 # uint32
# The device reports its channel pool in bytes (4 per element) in a uint32.
BUDGET_MAX = _field_max("INFO_R", "pool_size") // 4
# An SGD step of learning rate lr moves a weight by lr times its gradient; far
# beyond 1 every model this engine trains diverges in its first step.
LR_MAX = 10.0

_SHA_PATTERN = r"^[0-9a-f]{64}$"

# --- constrained types shared by the schemas. Floats are finite everywhere.
Finite = Annotated[float, Field(allow_inf_nan=False)]
Batch = Annotated[int, Field(ge=1, le=BATCH_MAX)]
Epochs = Annotated[int, Field(ge=1, le=1_000_000)]
EpochIndex = Annotated[int, Field(ge=0, le=1_000_000)]
LearningRate = Annotated[float, Field(gt=0.0, le=LR_MAX, allow_inf_nan=False)]
Temperature = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
Budget = Annotated[int, Field(ge=0, le=BUDGET_MAX)]
Sha256 = Annotated[str, Field(pattern=_SHA_PATTERN)]
Count = Annotated[int, Field(ge=1)]


class Strict(BaseModel):
    """Base of every file schema: exact JSON types (no "yes" for true, no true
    for 1), no unknown fields, no NaN or Infinity."""
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def field_path(loc) -> str:
    """('importance', '/conv0', 3) -> importance["/conv0"][3]"""
    out = ""
    for k in loc:
        if isinstance(k, int):
            out += f"[{k}]"
        elif not out:
            out = str(k)
        elif k.isidentifier():
            out += f".{k}"
        else:
            out += f"[{k!r}]"
    return out or "(top level)"


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _message(e: dict) -> str:
    """pydantic's error as a phrase about the field ("must be at least 1")."""
    t, ctx = e["type"], e.get("ctx", {})
    simple = {
        "missing": "is required", "extra_forbidden": "is not a known field",
        "int_type": "must be an integer", "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "float_type": "must be a number", "float_parsing": "must be a number",
        "finite_number": "must be a finite number (not NaN or Infinity)",
        "bool_type": "must be true or false", "bool_parsing": "must be true or false",
        "string_type": "must be a string", "list_type": "must be a list",
        "dict_type": "must be an object", "model_type": "must be an object",
        "model_attributes_type": "must be an object",
    }
    if t in simple:
        return simple[t]
    if t == "greater_than_equal":
        return f"must be at least {ctx['ge']}"
    if t == "greater_than":
        return f"must be greater than {ctx['gt']}"
    if t == "less_than_equal":
        return f"must be at most {ctx['le']}"
    if t == "less_than":
        return f"must be less than {ctx['lt']}"
    if t == "literal_error":
        return f"must be one of {ctx['expected']}"
    if t == "string_pattern_mismatch" and ctx.get("pattern") == _SHA_PATTERN:
        return "must be a SHA-256 digest (64 lowercase hexadecimal digits)"
    if t in ("too_short", "too_long"):
        n = ctx.get("min_length") if t == "too_short" else ctx.get("max_length")
        return f"must have {'at least' if t == 'too_short' else 'at most'} {n} item(s)"
    return e["msg"].removeprefix("Value error, ")


def describe(exc: ValidationError) -> list[str]:
    """One line per problem: the field, what is wrong, what was there."""
    lines = []
    for e in exc.errors():
        loc = [k for k in e["loc"] if not (isinstance(k, str) and k.startswith("function-"))]
        msg = _message(e)
        if loc and "input" in e and e["type"] not in ("missing", "extra_forbidden"):
            msg += f" (got {_short(e['input'])})"
        lines.append(f"{field_path(loc)} {msg}" if loc else msg)
    return lines


def validate(model: type[BaseModel], data: Any, where: str):
    """`data` as a `model`, or a MedyateError naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = describe(exc)
        if len(lines) == 1:
            raise MedyateError(f"{where}: {lines[0]}") from None
        raise MedyateError(f"{where}:\n" + "\n".join(f"  - {l}" for l in lines)) from None


def non_finite_paths(obj: Any, path: tuple = ()) -> list[str]:
    """Where NaN or +-Infinity sits in a JSON-like value (what JSON cannot hold)."""
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [field_path(path)]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite_paths(v, path + (k,))]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in non_finite_paths(v, path + (i,))]
    return []
