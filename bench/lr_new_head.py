#!/usr/bin/env python
"""The base learning rate `medyate plan` picks when the model gets a new head
(its outputs differ from the task's classes), against the alternatives, on the
real int8 models:

- "network": the range test over every layer (full backprop), what a plan
  without a new head uses;
- "subnetwork": the range test over what the session trains (the new head in
  full and a sample of the plan's channels), what a plan with a new head uses;
- 0.05: the fixed peak lr of bench/int8_models.py.

Each is the peak lr of the same MeDyate session (the 256 KiB plan on the QEMU
board, host simulation, cosine schedule with warm-up); test accuracy per epoch.

    PYTHONPATH=host .venv/bin/python bench/lr_new_head.py        # about 15 minutes

Writes bench/results/lr_new_head.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))

from medyate.algo import HostEngineFactory, run_strategy  # noqa: E402
from medyate.algo.plan import make_plan  # noqa: E402
from medyate.algo.ranking import lr_range_test  # noqa: E402
from medyate.data import load_task  # noqa: E402
from medyate.session.model import load_for_task  # noqa: E402
from medyate.session.run import strategy_from_plan  # noqa: E402

CASES = (("mcunet-5fps", "digits-rgb128"), ("proxyless-w0.3", "fmnist-5to9-rgb128"))
BOARD, RAM, FIXED_LR = "qemu-mps2-an500", "256KiB", 0.05
OUT = REPO / "bench" / "results"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--ranking-samples", type=int, default=64)
    args = ap.parse_args()
    rows = []
    for model, tname in CASES:
        t0 = time.perf_counter()
        task = load_task(tname, n_train=args.n_train, n_test=args.n_test, seed=0)
        path, graph, head = load_for_task(str(REPO / "models" / f"{model}.onnx"), task=task,
                                          seed=0, log=lambda s: None)
        factory = HostEngineFactory(graph, precision="int8")
        plan, _ = make_plan(path, graph, task, ram=RAM, board=BOARD, batch=8,
                            epochs=args.epochs, ranking_samples=args.ranking_samples, head=head,
                            precision="int8", log=lambda s: print("  " + s, flush=True))
        # the sweep a plan without a new head makes (make_plan's first range test)
        net = lr_range_test(factory, task.x_train, task.y_train, samples=args.ranking_samples,
                            batch=8, seed=plan.seed)
        row = {"model": model, "task": tname, "layers": len(plan.layers),
               "head": head["layer"],
               "lr_network": net.lr, "lr_subnetwork": plan.lr,
               "subnetwork_record": plan.lr_range_test, "runs": {}}
        for name, lr in (("network", net.lr), ("subnetwork", plan.lr), ("fixed", FIXED_LR)):
            hist = run_strategy(factory, task, strategy_from_plan(plan, graph),
                                epochs=args.epochs, batch=plan.batch, lr=lr, seed=plan.seed,
                                budget=plan.budget_elements)
            row["runs"][name] = {"lr": lr, "test_acc": [float(h["test_acc"]) for h in hist]}
            print(f"{model} {tname} {name} lr {lr:.3g}: "
                  f"{[round(100 * a, 1) for a in row['runs'][name]['test_acc']]}", flush=True)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
    OUT.mkdir(exist_ok=True)
    (OUT / "lr_new_head.json").write_text(json.dumps(rows, indent=2) + "\n")
    (OUT / "lr_new_head.md").write_text(report(rows, args))
    print((OUT / "lr_new_head.md").read_text())
    return 0


def report(rows, args) -> str:
    pct = lambda a: f"{100 * a:.1f}"  # noqa: E731
    lines = ["# The base learning rate with a new head", "",
             "`PYTHONPATH=host .venv/bin/python bench/lr_new_head.py`", "",
             f"MeDyate plan within {RAM} on {BOARD} (int8, a new head for the task's classes), "
             f"host simulation, {args.n_train} train / {args.n_test} test samples, "
             f"{args.epochs} epochs, batch 8, the range tests on {args.ranking_samples} samples. "
             "Peak lr from the range test over every layer (network), over the session's "
             f"trained subnetwork (what `medyate plan` uses with a new head), or fixed at "
             f"{FIXED_LR}.", "",
             "| model | task | lr: network / subnetwork / fixed | test acc per epoch, network | "
             "subnetwork | fixed | last: network / subnetwork / fixed |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        runs = [r["runs"][k] for k in ("network", "subnetwork", "fixed")]
        lines.append(
            f"| {r['model']} | {r['task']} | "
            + " / ".join(f"{x['lr']:.3g}" for x in runs) + " | "
            + " | ".join(", ".join(pct(a) for a in x["test_acc"]) for x in runs) + " | "
            + " / ".join(pct(x["test_acc"][-1]) for x in runs) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
