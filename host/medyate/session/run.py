"""A fine-tuning session: the plan's strategy, epoch by epoch, on any engine
(the host simulation or a device), with a checkpoint after every epoch.

RUN/ holds:
    metrics.jsonl      one JSON line per epoch (loss, train/test accuracy,
                       channels trained, bytes used; on a device also its
                       counter, named by what it counts: instructions (QEMU),
                       cycles (a board), nanoseconds (the host build))
    checkpoint.npz     weights + strategy state + RNG after the last epoch
                       (data only, validated before use: session/checkpoint.py)
    finetuned.onnx     the fine-tuned model (float ONNX; QDQ int8 ONNX for an int8 plan)
    training.png       accuracy and loss per epoch
    summary.json       before/after accuracy, memory, timing
    run.json, plan.json  what the session was started with and its plan
                       (session/run_record.py), for `medyate train --resume RUN`
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from ..errors import MedyateError
from ..outputs import atomic_path, atomic_write, output_dir

from .checkpoint import CHECKPOINT, LEGACY_CHECKPOINT, load_checkpoint, save_checkpoint
from .interrupt import ctrl_c_deferred_in_engine

METRICS = "metrics.jsonl"
# a device epoch's counter, by what it counts (boards.COUNTER_UNITS)
COUNTERS = ("instructions", "cycles", "nanoseconds")
SUMMARY = "summary.json"


def strategy_from_plan(plan, graph):
    """The strategy a plan asks for, over the plan's own pre-selected layers
    (the firmware is built for exactly those)."""
    from ..algo import strategies as S

    # a new head trains in full every epoch (planned so by `make_plan`)
    head = (getattr(plan, "head", None) or {}).get("layer")
    always = [head] if head in plan.layers else []
    bias_only = list(getattr(plan, "bias_only", ()) or ())
    if plan.strategy == "medyate":
        importance = plan.importance
        if not importance:
            # A hand-written plan without the ranking run's importance: start
            # uniform (the first epoch is TraDy's), then learn from the stats.
            # A device cannot run the full-backprop ranking itself.
            from ..ir.cost import input_channels
            importance = {n: [1.0] * int(input_channels(graph, graph.node(n)))
                          for n in plan.layers}
        return S.MeDyate(layers=plan.layers, importance=importance,
                         temperature=plan.temperature, train_bias=plan.train_bias,
                         always=always, bias_only=bias_only)
    if plan.strategy == "trady":
        return S.TraDy(layers=plan.layers, train_bias=plan.train_bias, always=always,
                       bias_only=bias_only)
    if plan.strategy == "static-random":
        return S.StaticRandom(layers=plan.layers, train_bias=plan.train_bias, always=always,
                              bias_only=bias_only)
    if plan.strategy == "fixed":
        return FixedSelection(plan.layers, plan.selection, plan.train_bias, bias_only)
    from ..strategy_names import PLAN_STRATEGIES
    raise MedyateError(f"strategy {plan.strategy!r} chooses its own layers and cannot run "
                       f"from a plan; use {', '.join(PLAN_STRATEGIES)}")


class FixedSelection:
    """The plan's own `selection` ([layer index, channel] pairs), every epoch."""
    name = "fixed"
    dynamic = False

    def __init__(self, layers, selection, train_bias, bias_only=()):
        self.layers = list(layers)
        self.pairs = sorted((self.layers[li], int(c)) for li, c in selection)
        self.train_bias = train_bias
        self.bias_only = list(bias_only)

    def prepare(self, ctx):
        from ..algo.strategies import EngineSpec
        return EngineSpec(self.layers, ctx.budget, self.train_bias, bias_only=self.bias_only)

    def select(self, epoch, ctx, rng):
        return self.pairs

    def observe(self, epoch, stats, steps):
        pass

    def state_arrays(self):
        return {}

    def load_state_arrays(self, arrays):
        if arrays:
            raise ValueError(f"unexpected array(s) {', '.join(sorted(arrays))}")


class Progress:
    """One line per epoch; within an epoch a live counter on a terminal."""

    def __init__(self, stream=None):
        # sys.stderr as it is when the session starts, not at import
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.bar = False        # a counter is on the current line

    def within(self, label: str):
        def cb(done: int, total: int) -> None:
            if self.live:
                width = 30
                k = width * done // max(1, total)
                self.stream.write(f"\r  {label} [{'#' * k}{'.' * (width - k)}] {done}/{total}")
                self.stream.flush()
                self.bar = True
        return cb

    def line(self, text: str) -> None:
        if self.live:
            self.stream.write("\r" + " " * 70 + "\r")
            self.bar = False
        print(text, file=self.stream, flush=True)

    def end_line(self) -> None:
        """End a live counter's line, so that whatever is printed next (an
        error, Ctrl-C's message) starts on a line of its own."""
        if self.live and getattr(self, "bar", False):
            self.stream.write("\n")
            self.stream.flush()
            self.bar = False


def split_validation(task, fraction: float, seed: int):
    """(task without the held-out samples, (x_val, y_val)): a seeded, fixed
    `fraction` of the training samples (at least one, and at least one left
    to train on), taken in the same proportion from every class."""
    import dataclasses

    import numpy as np
    if not 0.0 < fraction < 1.0:
        raise MedyateError(f"--val-split must be a fraction in (0, 1), got {fraction}")
    y = np.asarray(task.y_train)
    rng = np.random.default_rng([int(seed), 0x56414C])
    held = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        held.extend(idx[:int(round(fraction * len(idx)))].tolist())
    held = np.sort(np.asarray(held, dtype=np.int64))
    if len(held) == 0 or len(held) == len(y):
        raise MedyateError(f"--val-split {fraction} of {len(y)} training samples leaves "
                           f"{len(held)} for validation and {len(y) - len(held)} to train on")
    keep = np.setdiff1d(np.arange(len(y)), held)
    sub = dataclasses.replace(task, x_train=task.x_train[keep], y_train=y[keep],
                              train_index=None,
                              notes=(task.notes + "; " if task.notes else "") +
                              f"{len(held)} training samples held out for validation")
    return sub, (task.x_train[held], y[held])


BEST = "best.npz"


def _is_better(rec: dict, best: dict | None) -> bool:
    """Higher validation accuracy; on a tie, lower validation loss."""
    return best is None or (rec["val_acc"], -rec["val_loss"]) > (best["val_acc"],
                                                                 -best["val_loss"])


def _save_best(path: Path, epoch: int, weights: dict) -> None:
    import io

    import numpy as np
    from ..outputs import atomic_write
    arrays = {"epoch": np.asarray(epoch, np.int64)}
    for i, (w, b) in enumerate(weights.values()):
        arrays[f"weight_{i}"], arrays[f"bias_{i}"] = np.asarray(w, np.float32), np.asarray(b, np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue(), "best epoch's weights")


def _load_best(path: Path, epoch: int, like: dict) -> dict:
    """The weights saved for `epoch`, shaped like `like`; MedyateError otherwise."""
    import numpy as np
    try:
        z = dict(np.load(path, allow_pickle=False))
        if int(z["epoch"]) != epoch:
            raise ValueError(f"holds epoch {int(z['epoch'])}, the history's best is {epoch}")
        out = {}
        for i, (name, (w, b)) in enumerate(like.items()):
            wi, bi = z[f"weight_{i}"], z[f"bias_{i}"]
            if wi.shape != np.shape(w) or bi.shape != np.shape(b) or \
                    not (np.isfinite(wi).all() and np.isfinite(bi).all()):
                raise ValueError(f"weights of {name} do not fit the model or are not finite")
            out[name] = (wi, bi)
        return out
    except (OSError, KeyError, ValueError) as exc:
        raise MedyateError(f"{path}: cannot use the best epoch's weights: {exc}") from None


def run_session(graph, plan, task, factory, out_dir, epochs: int | None = None,
                resume: bool = False, progress: Progress | None = None,
                title: str = "", val=None, board: str = "host",
                record: dict[str, str] | None = None) -> dict:
    """Train; write RUN/ as described above; return the summary. A run
    directory this call created is removed again if it fails before its
    first checkpoint (or, after divergence, its outputs) were written. With
    `val` (x_val, y_val, held out from the training data: `split_validation`)
    every epoch is also evaluated on it, and finetuned.onnx is the epoch with
    the best validation accuracy (kept in RUN/best.npz across a resume).

    `board` is where the session trains: the checkpoint records it, and a
    resume elsewhere is refused. `record` ({file name: text}, the run's
    `run_record`) is written beside every checkpoint.

    A session that stops part-way (Ctrl-C, a device that stops answering, a
    failing serial link) after at least one completed epoch still writes the
    outputs of its last completed epoch, then raises `Interrupted`, which
    says what happened and how to continue."""
    out = Path(out_dir)
    with output_dir(out, "run directory",
                    keep=lambda: (out / CHECKPOINT).exists() or (out / SUMMARY).exists()):
        return _session(graph, plan, task, factory, out, epochs, resume, progress, title,
                        val, board, record)


class Interrupted(MedyateError):
    """A session stopped before its last epoch; its outputs are those of the
    last completed epoch. `exit_code` is 130 after Ctrl-C, else 1."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _why_stopped(exc: BaseException) -> tuple[str, int]:
    """(what happened, exit code) of an exception that ended a session."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)", 130
    if isinstance(exc, MedyateError):
        return f"stopped: {exc}", 1
    return f"stopped: the device link failed ({type(exc).__name__}: {exc})", 1


def _write_metrics(out: Path, history) -> None:
    atomic_write(out / METRICS, "".join(json.dumps(r, allow_nan=False) + "\n" for r in history),
                 "metrics")


def _session(graph, plan, task, factory, out: Path, epochs, resume, progress, title,
             val, board, record) -> dict:
    from ..algo.strategies import Diverged, Run
    from ..ir.onnx_export import export_onnx
    from ..plots import plot_training

    progress = progress or Progress()
    epochs = plan.epochs if epochs is None else epochs
    run = Run(factory, task, strategy_from_plan(plan, graph), epochs, plan.batch, plan.lr, plan.seed,
              plan.budget_elements, warmup=plan.warmup_epochs, log=progress.line)
    ckpt = out / CHECKPOINT
    summary_path = out / SUMMARY
    if resume:
        if not ckpt.exists() and (out / LEGACY_CHECKPOINT).exists():
            # A pickle runs code when loaded: it is never opened.
            raise MedyateError(f"{out / LEGACY_CHECKPOINT} is a checkpoint of an older medyate "
                               "(a Python pickle, which is not loaded because loading one can run "
                               f"code); start the session again in a new directory")
        if not ckpt.exists():
            raise MedyateError(f"nothing to resume in {out}: no {CHECKPOINT}")
        state, before = load_checkpoint(ckpt, plan=plan, task=task, run=run, board=board)
        run.restore(state)
        last_weights = state["weights"]
        progress.line(f"resuming after epoch {run.epoch} of {epochs}")
        # metrics.jsonl keeps exactly the checkpointed epochs
        _write_metrics(out, run.history)
    else:
        last_weights = None     # the model as given
        loss0, acc0 = run.engine.evaluate(task.x_test, task.y_test)
        if not math.isfinite(loss0):
            raise MedyateError(f"the model's test loss is {loss0} before any training: its "
                               "weights or the data hold NaN/inf")
        before = {"test_loss": float(loss0), "test_acc": float(acc0)}
        progress.line(f"before fine-tuning: test accuracy {100 * acc0:.1f}%, loss {loss0:.3f}")

    best = best_w = None
    if val is not None:
        done = [r for r in run.history if "val_acc" in r]
        for r in done:
            if _is_better(r, best):
                best = r
        if best is not None:
            best_w = _load_best(out / BEST, best["epoch"], run.engine.weights())
    t0 = time.perf_counter()
    stopped = interrupted = None
    saved = run.epoch       # epochs in the checkpoint

    def said_ctrl_c() -> None:
        progress.end_line()
        print(f"Ctrl-C: stopping when epoch {run.epoch + 1} ends (the host engine cannot stop "
              "part-way); Ctrl-C again stops at once, losing that epoch",
              file=getattr(progress, "stream", sys.stderr), flush=True)

    with ctrl_c_deferred_in_engine(said_ctrl_c) as ctrl_c:
        while not run.done:
            try:
                rec = run.step(progress.within(f"epoch {run.epoch + 1}/{epochs}"))
                if val is not None:
                    vl, va = run.engine.evaluate(val[0], val[1])
                    rec["val_loss"], rec["val_acc"] = float(vl), float(va)
            except Diverged as exc:
                # The run is back at its last good epoch, which the checkpoint
                # holds: write that epoch's outputs, then report.
                progress.line(f"stopped: {exc}")
                stopped = str(exc)
                break
            except (KeyboardInterrupt, MedyateError, OSError) as exc:
                # Ctrl-C, a device gone (QEMU killed, a board unplugged), a serial
                # failure: the epoch in progress is lost, the completed ones are not.
                progress.end_line()
                if saved == 0:
                    raise        # nothing completed: no outputs, nothing to resume
                what, code = _why_stopped(exc)
                # said once, by the error raised below, after the outputs are written
                interrupted = (f"{what} during epoch {saved + 1} of {epochs}", code)
                # an epoch that finished training but was not checkpointed is lost too
                run.history, run.epoch = run.history[:saved], saved
                break
            if val is not None and _is_better(rec, best):
                best, best_w = rec, run.engine.weights()
                _save_best(out / BEST, rec["epoch"], best_w)
            state = run.state()
            save_checkpoint(ckpt, state, plan=plan, task=task, before=before, board=board)
            last_weights, saved = state["weights"], run.epoch
            for name, text in (record or {}).items():
                atomic_write(out / name, text, name)
            _write_metrics(out, run.history)
            unit = next((k for k in COUNTERS if k in rec), None)
            extra = f", {rec[unit] / 1e6:.0f} M {unit}" if unit else ""
            if "val_acc" in rec:
                extra += f", val {100 * rec['val_acc']:.1f}%"
            progress.line(f"epoch {rec['epoch']}/{epochs}: loss {rec['loss']:.3f}, "
                          f"train {100 * rec['train_acc']:.1f}%, test {100 * rec['test_acc']:.1f}%, "
                          f"{rec['channels']} channels in {rec['layers']} layers{extra} "
                          f"({rec['seconds']:.1f} s)")
            if ctrl_c.pending and not run.done:
                # noted while the engine ran: the epoch is complete and saved
                interrupted = (f"interrupted (Ctrl-C) after epoch {saved} of {epochs}", 130)
                break

    hist = run.history
    chosen = hist[-1] if hist else None
    if best is not None:
        chosen = best
        progress.line(f"finetuned.onnx: epoch {best['epoch']} of {len(hist)}, the best "
                      f"validation accuracy ({100 * best['val_acc']:.1f}%, loss "
                      f"{best['val_loss']:.3f}; test {100 * best['test_acc']:.1f}%)")
    # the last completed epoch's weights: after an interruption the engine's
    # may be part-way through the next epoch (or unreadable: a device gone)
    final = best_w if best is not None else last_weights
    trained = graph.with_weights(final) if final is not None else graph
    with atomic_path(out / "finetuned.onnx", "ONNX model") as tmp:
        # an int8 session's model is QDQ: its trained int8 codes and the frozen scales
        export_onnx(trained, str(tmp), qdq=plan.precision == "int8")
    if hist:
        hist[0].setdefault("test_acc_before", before["test_acc"])
        with atomic_path(out / "training.png", "plot") as tmp:
            plot_training(hist, tmp, title)
    summary = {
        "model": plan.model, "strategy": plan.strategy, "epochs": epochs,
        "before": before,
        # `after` is the exported model: the best validation epoch with --val-split
        "after": {"test_loss": chosen["test_loss"], "test_acc": chosen["test_acc"]}
        if chosen else before,
        "exported_epoch": chosen["epoch"] if chosen else 0,
        "memory": _memory(run.engine),
        "seconds": time.perf_counter() - t0,
        "outputs": ["metrics.jsonl", "finetuned.onnx", "training.png", "summary.json"],
    }
    if val is not None:
        summary["validation"] = {"samples": int(len(val[1])),
                                 "best_epoch": best["epoch"] if best else None,
                                 "val_acc": best["val_acc"] if best else None,
                                 "val_loss": best["val_loss"] if best else None}
        summary["last"] = {"epoch": len(hist), "test_loss": hist[-1]["test_loss"],
                           "test_acc": hist[-1]["test_acc"]} if hist else None
    if stopped:
        summary["stopped"] = stopped
    if interrupted:
        summary["interrupted"] = interrupted[0]
        summary["completed_epochs"] = len(hist)
    atomic_write(summary_path, json.dumps(summary, indent=2, allow_nan=False) + "\n", "summary")
    if stopped:
        last = (f"the checkpoint and outputs of epoch {run.epoch}" if run.epoch else
                "the outputs of the model as given (no epoch completed)")
        raise MedyateError(f"training diverged: {stopped}. {out}/ holds {last}; plan again "
                           "with a smaller --lr (or without --lr: a range test chooses one) "
                           "and train again (a checkpoint resumes only under its own plan)")
    if interrupted:
        from .run_record import resume_command
        how = (resume_command(out) if record else
               f"medyate train MODEL --plan PLAN --data DATA --board {board} --resume {out}")
        raise Interrupted(f"{interrupted[0]}. {out}/ holds the checkpoint and the outputs "
                          f"(finetuned.onnx, training.png, summary.json) of epoch {run.epoch}; "
                          f"continue with:\n  {how}", interrupted[1])
    return summary


def _memory(engine) -> dict:
    try:
        return engine.memory()
    except (MedyateError, OSError):
        return {}
