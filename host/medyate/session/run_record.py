"""RUN/run.json: what a training session was started with, so that
`medyate train --resume RUN/` needs nothing else.

It holds the model (an absolute path, or a bundled model's name), the data
(a builtin task's name or an absolute path, with --n-train, --n-test,
--data-seed), the board and serial port, --input-shape, --epochs,
--val-split, the link options and --build-dir. The plan is copied beside it
as RUN/plan.json, so that the plan file it came from may change or move.
Both are written with every checkpoint (the record always describes the
session the checkpoint belongs to).

On resume, what the command line repeats wins, except the board: a session
continues on the board it was trained on (a QEMU session is never quietly
continued in the host simulation, nor the reverse)."""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import Field

from ..errors import MedyateError
from ..schema import Count, Epochs, Seed, Strict, validate

RECORD = "run.json"
PLAN_COPY = "plan.json"

# The options a record holds, by their argparse names.
FIELDS = ("model", "data", "n_train", "n_test", "data_seed", "input_shape", "board",
          "port", "epochs", "val_split", "frame_size", "retries", "build_dir")


class RunRecord(Strict):
    format: Literal["medyate-run"] = "medyate-run"
    version: Literal[1] = 1
    model: Annotated[str, Field(min_length=1)]
    data: Annotated[str, Field(min_length=1)]
    n_train: Optional[Count] = None
    n_test: Optional[Count] = None
    data_seed: Seed = 0
    input_shape: Optional[str] = None
    board: Annotated[str, Field(min_length=1)]
    port: Optional[str] = None
    epochs: Optional[Epochs] = None
    val_split: Optional[Annotated[float, Field(gt=0.0, lt=1.0)]] = None
    frame_size: Optional[Annotated[int, Field(ge=1)]] = None
    retries: Annotated[int, Field(ge=0)] = 5
    build_dir: Optional[str] = None


def _absolute_if_file(value: str | None) -> str | None:
    """A path that exists, made absolute (a resume may run elsewhere); a name
    (a bundled model, a builtin task) as it is."""
    if value is None:
        return None
    p = Path(value)
    return str(p.resolve()) if p.exists() else str(value)


def record_of(args) -> dict:
    """The run.json content of a `medyate train` command line (argparse namespace)."""
    d = {k: getattr(args, k, None) for k in FIELDS}
    d["model"] = _absolute_if_file(d["model"])
    d["data"] = _absolute_if_file(d["data"])
    if d["build_dir"] is not None:
        d["build_dir"] = str(Path(d["build_dir"]).resolve())
    if d["retries"] is None:
        d["retries"] = 5
    d = {k: v for k, v in d.items() if v is not None}
    rec = validate(RunRecord, {"format": "medyate-run", "version": 1, **d}, "run record")
    return rec.model_dump()


def record_files(record: dict, plan) -> dict[str, str]:
    """{file name: text} to write into RUN/ with each checkpoint."""
    return {RECORD: json.dumps(record, indent=2, allow_nan=False) + "\n",
            PLAN_COPY: plan.to_json()}


def load_record(run_dir) -> dict | None:
    """RUN/run.json validated, or None when the run has none (made by an older
    medyate, or a session started by the library)."""
    p = Path(run_dir) / RECORD
    if not p.exists():
        return None
    where = f"run record {p}"
    try:
        raw = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise MedyateError(f"cannot read {where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise MedyateError(f"{where} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    return validate(RunRecord, raw, where).model_dump()


def resume_command(run_dir) -> str:
    """The command that continues the session in RUN/ (complete: run.json and
    RUN/plan.json give everything else)."""
    return f"medyate train --resume {shlex.quote(str(run_dir))}"


def fill_from_record(args, run_dir, recorded_board: str | None) -> None:
    """Complete a `train --resume RUN` command line in place from RUN/run.json
    (what the command line gives wins, the board excepted: a board other than
    the recorded one is refused). `recorded_board` is the checkpoint's, for a
    run without run.json."""
    run_dir = Path(run_dir)
    rec = load_record(run_dir) or {}
    board = rec.get("board") or recorded_board
    if args.board is not None and board is not None and args.board != board:
        raise MedyateError(
            f"--board {args.board}: the session in {run_dir} was trained on {board}; it "
            f"continues only there (resume with --board {board}, or leave --board out), or "
            f"start a new run with --out")
    if board is None and args.board is None:
        raise MedyateError(f"{run_dir} does not record its board (made by an older medyate): "
                           "give --board as when it was started")
    for k in FIELDS:
        if getattr(args, k, None) is None and rec.get(k) is not None:
            setattr(args, k, rec[k])
    if args.board is None:
        args.board = board
    if getattr(args, "plan", None) is None and (run_dir / PLAN_COPY).exists():
        args.plan = str(run_dir / PLAN_COPY)
    missing = [f for f, v in (("MODEL", args.model), ("--plan", args.plan),
                              ("--data", args.data)) if v is None]
    if missing:
        raise MedyateError(f"{run_dir} has no {RECORD} to take {', '.join(missing)} from "
                           f"(made by an older medyate): give {', '.join(missing)} as when "
                           "the session was started")
