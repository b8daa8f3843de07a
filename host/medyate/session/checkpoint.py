"""Checkpoints: data only, checked field by field before anything is used.

RUN/checkpoint.npz is a NumPy archive loaded with allow_pickle=False (no
object can be smuggled in: loading never runs code). It holds

    meta            UTF-8 JSON (uint8 array) of the `CheckpointMeta` schema:
                    epoch (the last completed, counted from 1 as everywhere),
                    history, the accuracy before fine-tuning, the
                    sampling RNG state, the learning-rate factor, the trained layers, the strategy's
                    name, the board it was trained on, and the hashes below
    weight_<i>      float32 weights of trainable layer i (ONNX layout)
    bias_<i>        float32 bias of trainable layer i
    strategy.<key>  what the strategy learnt (e.g. MeDyate's channel energies)

Hashes: `model_sha256` (the ONNX file), `plan_sha256` (every plan field but
`model`, a path, `epochs`, which --epochs may change anyway, and `data`,
which the next hash checks), `data_sha256`
(the task's arrays) and `content_sha256` over the meta and every array, so a
flipped byte anywhere is an error rather than a silently changed weight.

Resuming on other data is refused: the epoch order, the channel statistics
and the metrics so far all belong to the checkpoint's data, and a run that
mixes two data sets reports neither.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import numpy as np
from pydantic import Field, model_validator

from ..data.record import data_sha256
from ..errors import MedyateError
from ..outputs import atomic_write
from ..schema import EpochIndex, Finite, Sha256, Strict, non_finite_paths, validate

CHECKPOINT = "checkpoint.npz"
LEGACY_CHECKPOINT = "checkpoint.pkl"
FORMAT = "medyate-checkpoint"
# 2: history epochs count from 1 (version 1 counted them from 0; still read)
VERSION = 2

U128 = Annotated[int, Field(ge=0, lt=2 ** 128)]


class Before(Strict):
    test_loss: Finite
    test_acc: Annotated[float, Field(ge=0.0, le=1.0)]


class Pcg64(Strict):
    state: U128
    inc: U128


class RngState(Strict):
    bit_generator: Literal["PCG64"]
    state: Pcg64
    has_uint32: Annotated[int, Field(ge=0, le=1)]
    uinteger: Annotated[int, Field(ge=0, lt=2 ** 32)]


class CheckpointMeta(Strict):
    format: Literal["medyate-checkpoint"]
    version: Literal[1, 2]
    model_sha256: Sha256
    plan_sha256: Sha256
    data_sha256: Sha256
    content_sha256: Sha256
    data: str
    plan: dict[str, Any]
    epoch: EpochIndex
    history: list[dict[str, Any]]
    before: Before
    rng: RngState
    layers: list[str]
    strategy: str
    # the learning-rate factor left by divergence retries so far
    lr_scale: Annotated[float, Field(gt=0.0, le=1.0)]
    # where the session trains (host, a board): it continues only there.
    # Absent in checkpoints of an older medyate.
    board: Optional[Annotated[str, Field(min_length=1)]] = None

    @model_validator(mode="after")
    def _history_matches_epoch(self):
        if len(self.history) != self.epoch:
            raise ValueError(f"history has {len(self.history)} records for epoch {self.epoch}")
        first = 0 if self.version == 1 else 1
        for k, rec in enumerate(self.history):
            if rec.get("epoch") != k + first:
                raise ValueError(f"history[{k}].epoch is {rec.get('epoch')!r}, expected "
                                 f"{k + first}")
        return self


def _plan_fields(plan) -> dict:
    d = asdict(plan)
    d.pop("model", None)
    d.pop("epochs", None)
    # the data is checked by data_sha256 itself (and plans made before the
    # plan recorded its data keep their hash)
    d.pop("data", None)
    # plans made before bias_only existed keep their hash; a plan with bias-only
    # layers hashes them
    if not d.get("bias_only"):
        d.pop("bias_only", None)
    return d


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def plan_sha256(plan) -> str:
    return _sha(_plan_fields(plan))


def _content_sha256(meta: dict, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in meta.items() if k != "content_sha256"},
                        sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\n{name} {a.dtype.str} {a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path, state: dict, *, plan, task, before: dict,
                    board: str | None = None) -> None:
    """`state` is `Run.state()`; `board` where the session trains. Written atomically."""
    names = list(state["weights"])
    arrays: dict[str, np.ndarray] = {}
    for i, n in enumerate(names):
        w, b = state["weights"][n]
        arrays[f"weight_{i}"] = np.asarray(w, np.float32)
        arrays[f"bias_{i}"] = np.asarray(b, np.float32)
    for k, a in state["strategy"].state_arrays().items():
        arrays[f"strategy.{k}"] = np.asarray(a)
    for i, n in enumerate(names):
        if not (np.isfinite(arrays[f"weight_{i}"]).all() and np.isfinite(arrays[f"bias_{i}"]).all()):
            raise MedyateError(f"not writing a checkpoint: the weights of {n} are not finite")
    meta = {"format": FORMAT, "version": VERSION,
            "model_sha256": plan.model_sha256, "plan_sha256": plan_sha256(plan),
            "data_sha256": data_sha256(task), "data": str(getattr(task, "name", "")),
            "plan": _plan_fields(plan),
            "epoch": int(state["epoch"]), "history": state["history"],
            "before": before, "rng": state["rng"], "layers": names,
            "strategy": state["strategy"].name,
            "lr_scale": float(state.get("lr_scale", 1.0))}
    if board is not None:
        meta["board"] = str(board)
    bad = non_finite_paths(meta)
    if bad:
        raise MedyateError("not writing a checkpoint with non-finite values in "
                           + ", ".join(bad))
    meta["content_sha256"] = _content_sha256(meta, arrays)
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    atomic_write(path, buf.getvalue(), "checkpoint")


def _read_archive(p: Path) -> dict[str, np.ndarray]:
    where = f"checkpoint {p}"
    if p.is_dir():
        raise MedyateError(f"{where} is a directory, not a checkpoint file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise MedyateError(f"cannot read {where}: {exc.strerror}") from None
    if size == 0:
        raise MedyateError(f"{where} is empty (0 bytes): the run was cut before its first "
                           "checkpoint was complete; start it again")
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic[:4] != b"PK\x03\x04" and magic != b"\x93NUMPY":
        raise MedyateError(f"{where} is not a readable checkpoint (not a NumPy archive: "
                           "corrupt, or another kind of file)")
    try:
        z = np.load(p, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise MedyateError(f"{where} is a single array, not a checkpoint archive")
        with z:
            return {k: z[k] for k in z.files}
    except MedyateError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError,
            NotImplementedError) as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise MedyateError(f"{where} holds pickled Python objects, which are never loaded "
                               "(a checkpoint is data only)") from None
        raise MedyateError(f"{where} is not a readable checkpoint (truncated or corrupt: "
                           f"{exc})") from None


def checkpoint_board(path) -> str | None:
    """The board a checkpoint was trained on, or None when it does not say (or
    cannot be read: `load_checkpoint` then says why)."""
    try:
        raw = _read_archive(Path(path)).get("meta")
        board = json.loads(raw.tobytes().decode("utf-8")).get("board")
    except (MedyateError, AttributeError, UnicodeDecodeError, ValueError):
        return None
    return board if isinstance(board, str) and board else None


def load_checkpoint(path, *, plan, task, run, board: str | None = None) -> tuple[dict, dict]:
    """Validate the checkpoint against this plan, data, `board` (where the
    session is to continue) and prepared `run`;
    return (state for `run.restore`, `before`). Nothing of the run is changed
    unless every field is right, except the strategy's own arrays."""
    p = Path(path)
    where = f"checkpoint {p}"
    arrays = _read_archive(p)
    raw_meta = arrays.pop("meta", None)
    if raw_meta is None:
        raise MedyateError(f"{where}: missing field meta (not a medyate checkpoint)")
    if raw_meta.dtype != np.uint8 or raw_meta.ndim != 1:
        raise MedyateError(f"{where}: meta must be UTF-8 JSON bytes, got {raw_meta.dtype} "
                           f"{raw_meta.shape}")
    try:
        meta = json.loads(raw_meta.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MedyateError(f"{where}: meta is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise MedyateError(f"{where}: meta must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise MedyateError(f"{where}: format is {meta.get('format')!r}, not {FORMAT!r}")
    bad = non_finite_paths(meta)
    if bad:
        raise MedyateError(f"{where}: non-finite value in {', '.join(bad)}")
    m = validate(CheckpointMeta, meta, where)
    if _content_sha256(meta, arrays) != m.content_sha256:
        raise MedyateError(f"{where} is corrupt: its content does not match content_sha256 "
                           "(a changed byte); start again from another copy")
    if board is not None and m.board is not None and m.board != board:
        raise MedyateError(f"{where} was trained on {m.board}, not {board}: a session "
                           f"continues on its own board (resume with --board {m.board})")
    if m.model_sha256 != plan.model_sha256:
        raise MedyateError(f"{where} belongs to another model (model_sha256 "
                           f"{m.model_sha256[:12]}..., the plan's {plan.model_sha256[:12]}...)")
    if m.plan_sha256 != plan_sha256(plan):
        now = _plan_fields(plan)
        diff = sorted(k for k in set(now) | set(m.plan) if now.get(k) != m.plan.get(k))
        raise MedyateError(f"{where} was made with another plan: field(s) "
                           f"{', '.join(diff) or 'plan_sha256'} differ")
    if m.data_sha256 != data_sha256(task):
        raise MedyateError(
            f"{where} was trained on other data ({m.data!r}) than given now "
            f"({getattr(task, 'name', '?')!r}, {len(task.y_train)} train / {len(task.y_test)} "
            "test samples): resume with the same --data, --n-train, --n-test and --data-seed")
    fresh = run.engine.weights()
    if m.layers != list(fresh):
        raise MedyateError(f"{where}: layers {m.layers} are not the plan's {list(fresh)}")
    if m.strategy != run.strategy.name:
        raise MedyateError(f"{where}: strategy is {m.strategy!r}, the plan's is "
                           f"{run.strategy.name!r}")
    weights = {}
    for i, (name, (w0, b0)) in enumerate(fresh.items()):
        wb = []
        for key, ref in ((f"weight_{i}", w0), (f"bias_{i}", b0)):
            a = arrays.pop(key, None)
            if a is None:
                raise MedyateError(f"{where}: missing field {key} ({name})")
            if a.dtype != np.float32 or a.shape != np.shape(ref):
                raise MedyateError(f"{where}: {key} ({name}) is {a.dtype} {a.shape}, expected "
                                   f"float32 {np.shape(ref)}")
            if not np.isfinite(a).all():
                raise MedyateError(f"{where}: {key} ({name}) holds NaN or Infinity")
            wb.append(a)
        weights[name] = tuple(wb)
    strat = {k[len("strategy."):]: arrays.pop(k) for k in list(arrays) if k.startswith("strategy.")}
    if arrays:
        raise MedyateError(f"{where}: unknown field(s) {', '.join(sorted(arrays))}")
    try:
        run.strategy.load_state_arrays(strat)
    except ValueError as exc:
        raise MedyateError(f"{where}: strategy.{exc}") from None
    history = m.history
    if m.version == 1:
        history = [{**r, "epoch": r["epoch"] + 1} for r in history]
    state = {"epoch": m.epoch, "history": history, "rng": m.rng.model_dump(),
             "strategy": run.strategy, "weights": weights, "lr_scale": m.lr_scale}
    return state, m.before.model_dump()
