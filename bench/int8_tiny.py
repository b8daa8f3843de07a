#!/usr/bin/env python
"""int8 against fp32 on the bundled tiny models, same task and schedule: each
float model is quantized by onnxruntime's quantize_static (`medyate convert`'s
path, calibrated on 256 training samples), both are planned within 256 KiB on
the QEMU board and fine-tuned with MeDyate for the same epochs, batch and seed
(host simulation: the same C as QEMU); then instructions per training step of
each in QEMU (one streamed-free epoch of a few samples from the dataset image).

    PYTHONPATH=host .venv/bin/python bench/int8_tiny.py     # about 10 minutes

Writes bench/results/int8_tiny.{json,md}.
"""
from __future__ import annotations

import argparse

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))
sys.path.insert(0, str(REPO / "bench"))

from int8_models import qemu_steps  # noqa: E402
from medyate.algo import HostEngineFactory, run_strategy  # noqa: E402
from medyate.algo.plan import make_plan  # noqa: E402
from medyate.data import load_task  # noqa: E402
from medyate.ir.quantize import quantize_model  # noqa: E402
from medyate.planner.footprint import plan_footprint  # noqa: E402
from medyate.session.model import load_for_task  # noqa: E402
from medyate.session.run import strategy_from_plan  # noqa: E402

MODELS = ("mcunet-tiny", "mbv2-tiny")
TASK = "fmnist-5to9"
BOARD = "qemu-mps2-an500"
EPOCHS, BATCH, LR, SEED = 6, 8, 0.05, 0
OUT = REPO / "bench" / "results"


def main() -> int:
    task = load_task(TASK, n_train=400, n_test=300, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for model in MODELS:
            src = REPO / "models" / f"{model}.onnx"
            q = Path(d) / f"{model}-int8.onnx"
            quantize_model(src, q, task.x_train[:256], max_samples=256)
            for precision, path in (("fp32", src), ("int8", q)):
                p, graph, head = load_for_task(str(path), task=task, seed=SEED,
                                               log=lambda s: None)
                plan, _ = make_plan(p, graph, task, ram="256KiB", board=BOARD, batch=BATCH,
                                    epochs=EPOCHS, lr=LR, seed=SEED, head=head,
                                    precision=precision, log=lambda s: None)
                factory = HostEngineFactory(graph, precision=precision)
                hist = run_strategy(factory, task,
                                    strategy_from_plan(plan, graph),
                                    epochs=EPOCHS, batch=BATCH, lr=LR, seed=SEED,
                                    budget=plan.budget_elements)
                row = {"model": model, "precision": precision, "layers": len(plan.layers),
                       "budget_elements": plan.budget_elements,
                       "ram": plan_footprint(graph, plan, BOARD)["total"],
                       "test_acc": [float(h["test_acc"]) for h in hist],
                       "qemu": qemu_steps(graph, plan, task, 16)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    OUT.mkdir(exist_ok=True)
    (OUT / "int8_tiny.json").write_text(json.dumps(rows, indent=2) + "\n")
    write_report(rows)
    return 0


def write_report(rows) -> None:
    lines = ["# int8 against fp32 on the bundled tiny models", "",
             "`PYTHONPATH=host .venv/bin/python bench/int8_tiny.py`", "",
             f"{TASK}, 400 train / 300 test, MeDyate plan within 256 KiB on {BOARD}, "
             f"{EPOCHS} epochs, batch {BATCH}, lr {LR}, seed {SEED}; int8 = onnxruntime "
             "quantize_static (256 calibration samples) on the int8 kernels. Each precision "
             "gets its own plan for the same RAM: int8 pre-selects more layers (its maps "
             "cost a quarter).", "",
             "| model | precision | plan RAM B | layers | budget | test acc (last epoch) | "
             "instructions per step (QEMU) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['precision']} | {r['ram']} | {r['layers']} | "
                     f"{r['budget_elements']} | {100 * r['test_acc'][-1]:.1f} | "
                     f"{r['qemu']['instructions_per_step'] / 1e6:.2f} M |")
    by = {(r["model"], r["precision"]): r for r in rows}
    acc = {m: 100 * (by[m, "int8"]["test_acc"][-1] - by[m, "fp32"]["test_acc"][-1])
           for m in MODELS}
    cost = [by[m, "int8"]["qemu"]["instructions_per_step"]
            / by[m, "fp32"]["qemu"]["instructions_per_step"] for m in MODELS]
    lines += ["", "Accuracy, int8 minus fp32: " + ", ".join(
              f"{m} {acc[m]:+.1f}" for m in MODELS) + " points. Instructions: an int8 step "
              f"costs {min(cost):.1f}-{max(cost):.1f}x the fp32 step. The int8 forward and "
              "the int8 backward kernels (conv, depthwise and fully connected input and "
              "weight gradients, the clamp mask and the clamp's fp32 input gradient, the "
              "QAS update of weight slices) are Cortex-M7 kernels "
              "(bench/results/kernel_instr.md); the int32 bias update runs the reference "
              "C, and every int8 code costs a conversion to float before its MAC "
              "(bench/results/int8_profile.md: where a step's instructions go)."]
    (OUT / "int8_tiny.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", action="store_true",
                    help="write the tables again from the committed JSON, without running")
    if ap.parse_args().report:
        write_report(json.loads((OUT / "int8_tiny.json").read_text()))
        sys.exit(0)
    sys.exit(main())
