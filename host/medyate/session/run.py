"""A fine-tuning session: the plan's strategy, epoch by epoch, on any engine
(the host simulation or a device), with a checkpoint after every epoch.

RUN/ holds:
    metrics.jsonl      one JSON line per epoch (loss, train/test accuracy,
                       channels trained, bytes used, device cycles if any)
    checkpoint.npz     weights + strategy state + RNG after the last epoch
                       (data only, validated before use: session/checkpoint.py)
    finetuned.onnx     the fine-tuned model
    training.png       accuracy and loss per epoch
    summary.json       before/after accuracy, memory, timing
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

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


def strategy_from_plan(plan, graph):
    """The strategy a plan asks for, over the plan's own pre-selected layers
    (the firmware is built for exactly those)."""
    from ..algo import strategies as S

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
                         temperature=plan.temperature, train_bias=plan.train_bias)
    if plan.strategy == "trady":
        return S.TraDy(layers=plan.layers, train_bias=plan.train_bias)
    if plan.strategy == "static-random":
        return S.StaticRandom(layers=plan.layers, train_bias=plan.train_bias)
    if plan.strategy == "fixed":
        return FixedSelection(plan.layers, plan.selection, plan.train_bias)
    from ..strategy_names import PLAN_STRATEGIES
    raise MedyateError(f"strategy {plan.strategy!r} chooses its own layers and cannot run "
                       f"from a plan; use {', '.join(PLAN_STRATEGIES)}")


class FixedSelection:
    """The plan's own `selection` ([layer index, channel] pairs), every epoch."""
    name = "fixed"
    dynamic = False

    def __init__(self, layers, selection, train_bias):
        self.layers = list(layers)
        self.pairs = sorted((self.layers[li], int(c)) for li, c in selection)
        self.train_bias = train_bias

    def prepare(self, ctx):
        from ..algo.strategies import EngineSpec
        return EngineSpec(self.layers, ctx.budget, self.train_bias)

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

    def within(self, label: str):
        def cb(done: int, total: int) -> None:
            if self.live:
                width = 30
                k = width * done // max(1, total)
                self.stream.write(f"\r  {label} [{'#' * k}{'.' * (width - k)}] {done}/{total}")
                self.stream.flush()
        return cb

    def line(self, text: str) -> None:
        if self.live:
            self.stream.write("\r" + " " * 70 + "\r")
        print(text, file=self.stream, flush=True)


def run_session(graph, plan, task, factory, out_dir, epochs: int | None = None,
                resume: bool = False, progress: Progress | None = None,
                title: str = "") -> dict:
    """Train; write RUN/ as described above; return the summary. A run
    directory this call created is removed again if it fails before its
    first checkpoint (or, after divergence, its outputs) were written."""
    out = Path(out_dir)
    with output_dir(out, "run directory",
                    keep=lambda: (out / CHECKPOINT).exists() or (out / SUMMARY).exists()):
        return _session(graph, plan, task, factory, out, epochs, resume, progress, title)


def _write_metrics(out: Path, history) -> None:
    atomic_write(out / METRICS, "".join(json.dumps(r, allow_nan=False) + "\n" for r in history),
                 "metrics")


def _session(graph, plan, task, factory, out: Path, epochs, resume, progress, title) -> dict:
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
        state, before = load_checkpoint(ckpt, plan=plan, task=task, run=run)
        run.restore(state)
        progress.line(f"resuming after epoch {run.epoch} of {epochs}")
        # metrics.jsonl keeps exactly the checkpointed epochs
        _write_metrics(out, run.history)
    else:
        loss0, acc0 = run.engine.evaluate(task.x_test, task.y_test)
        if not math.isfinite(loss0):
            raise MedyateError(f"the model's test loss is {loss0} before any training: its "
                               "weights or the data hold NaN/inf")
        before = {"test_loss": float(loss0), "test_acc": float(acc0)}
        progress.line(f"before fine-tuning: test accuracy {100 * acc0:.1f}%, loss {loss0:.3f}")

    t0 = time.perf_counter()
    stopped = None
    while not run.done:
        try:
            rec = run.step(progress.within(f"epoch {run.epoch + 1}/{epochs}"))
        except Diverged as exc:
            # The run is back at its last good epoch, which the checkpoint
            # holds: write that epoch's outputs, then report.
            progress.line(f"stopped: {exc}")
            stopped = str(exc)
            break
        save_checkpoint(ckpt, run.state(), plan=plan, task=task, before=before)
        _write_metrics(out, run.history)
        extra = f", {rec['cycles'] / 1e6:.0f} M instr" if "cycles" in rec else ""
        progress.line(f"epoch {rec['epoch'] + 1}/{epochs}: loss {rec['loss']:.3f}, "
                      f"train {100 * rec['train_acc']:.1f}%, test {100 * rec['test_acc']:.1f}%, "
                      f"{rec['channels']} channels in {rec['layers']} layers{extra} "
                      f"({rec['seconds']:.1f} s)")

    trained = graph.with_weights(run.engine.weights())
    with atomic_path(out / "finetuned.onnx", "ONNX model") as tmp:
        export_onnx(trained, str(tmp))
    hist = run.history
    if hist:
        hist[0].setdefault("test_acc_before", before["test_acc"])
        with atomic_path(out / "training.png", "plot") as tmp:
            plot_training(hist, tmp, title)
    summary = {
        "model": plan.model, "strategy": plan.strategy, "epochs": epochs,
        "before": before,
        "after": {"test_loss": hist[-1]["test_loss"], "test_acc": hist[-1]["test_acc"]}
        if hist else before,
        "memory": run.engine.memory(),
        "seconds": time.perf_counter() - t0,
        "outputs": ["metrics.jsonl", "finetuned.onnx", "training.png", "summary.json"],
    }
    if stopped:
        summary["stopped"] = stopped
    atomic_write(summary_path, json.dumps(summary, indent=2, allow_nan=False) + "\n", "summary")
    if stopped:
        last = (f"the checkpoint and outputs of epoch {run.epoch}" if run.epoch else
                "the outputs of the model as given (no epoch completed)")
        raise MedyateError(f"training diverged: {stopped}. {out}/ holds {last}; plan again "
                           "with a smaller --lr (or without --lr: a range test chooses one) "
                           "and train again (a checkpoint resumes only under its own plan)")
    return summary
