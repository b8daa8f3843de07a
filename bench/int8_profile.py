#!/usr/bin/env python
"""Where an int8 training step's instructions go: the plan of bench/int8_tiny.py
(bundled tiny model quantized by onnxruntime, MeDyate within 256 KiB on the
QEMU board), one epoch of a few samples in QEMU with the TCG plugin that
counts the instructions inside every firmware object file exactly
(boards/qemu-mps2-an500/qemu-plugin/insn_profile.c); the functions that cost
most per training step.

    PYTHONPATH=host .venv/bin/python bench/int8_profile.py    # about 2 minutes

Writes bench/results/int8_profile.{json,md}. Per step = the function's count
over the run (the epoch and the session's short evaluation) / samples.
"""
from __future__ import annotations

import argparse

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))
sys.path.insert(0, str(REPO / "bench"))

from int8_tiny import BATCH, BOARD, EPOCHS, LR, SEED, TASK  # noqa: E402
from medyate.algo.plan import make_plan  # noqa: E402
from medyate.data import load_task  # noqa: E402
from medyate.ir.quantize import quantize_model  # noqa: E402
from medyate.session import qemu as qemu_mod  # noqa: E402
from medyate.session.device_session import device_session  # noqa: E402
from medyate.session.insn_profile import InsnProfile  # noqa: E402
from medyate.session.model import load_for_task  # noqa: E402
from medyate.session.run import Progress  # noqa: E402

MODELS = ("mcunet-tiny", "mbv2-tiny")
SAMPLES, TOP = 16, 12
OUT = REPO / "bench" / "results"


def profile(model: str, task, d: Path) -> dict:
    q = d / f"{model}-int8.onnx"
    quantize_model(REPO / "models" / f"{model}.onnx", q, task.x_train[:256], max_samples=256)
    p, graph, head = load_for_task(str(q), task=task, seed=SEED, log=lambda s: None)
    plan, _ = make_plan(p, graph, task, ram="256KiB", board=BOARD, batch=BATCH, epochs=EPOCHS,
                        lr=LR, seed=SEED, head=head, precision="int8", log=lambda s: None)
    profs = []
    base = qemu_mod.QemuMachine

    class Profiled(base):     # the session's QEMU, with the counting plugin
        def __init__(self, elf, *a, **k):
            # the linker map: counts per object file, i.e. per kernel with its helpers
            profs.append(InsnProfile(elf, map_file=Path(elf).with_suffix(".map")))
            k["extra_args"] = tuple(k.get("extra_args", ())) + tuple(profs[-1].qemu_args())
            super().__init__(elf, *a, **k)

    small = dataclasses.replace(task, x_train=task.x_train[:SAMPLES],
                                y_train=task.y_train[:SAMPLES], x_test=task.x_test[:2],
                                y_test=task.y_test[:2])
    qemu_mod.QemuMachine = Profiled
    try:
        device_session(graph, plan, small, d / model, board=BOARD, port=None, epochs=1,
                       resume=False, progress=Progress(open("/dev/null", "w")), title="profile")
    finally:
        qemu_mod.QemuMachine = base
    counts = profs[0].read()
    rec = json.loads((d / model / "metrics.jsonl").read_text().splitlines()[0])
    fns = sorted(((n, c / SAMPLES) for n, c in counts.items()
                  if not n.startswith("<") and n != "board"), key=lambda x: -x[1])
    return {"model": model, "samples": SAMPLES,
            "instructions_per_step": rec["instructions"] / SAMPLES,
            "functions": [{"name": n, "per_step": c} for n, c in fns[:TOP]]}


def main() -> int:
    task = load_task(TASK, n_train=400, n_test=300, seed=0)
    with tempfile.TemporaryDirectory() as d:
        rows = [profile(m, task, Path(d)) for m in MODELS]
    OUT.mkdir(exist_ok=True)
    (OUT / "int8_profile.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["# Where an int8 training step's instructions go", "",
             "`PYTHONPATH=host .venv/bin/python bench/int8_profile.py`", "",
             f"The int8 plans of bench/int8_tiny.py ({TASK}, 256 KiB on {BOARD}), {SAMPLES} "
             "samples of one epoch in QEMU, exact counts per firmware object file (TCG plugin "
             "and linker map: a kernel with its static helpers), divided by the samples; the "
             "board object (its UART wait loop) left out. Kernels of the Cortex-M7 folder "
             "where the board selects one, the reference otherwise.", ""]
    for r in rows:
        lines += [f"## {r['model']}: {r['instructions_per_step'] / 1e6:.2f} M instructions "
                  "per step", "", "| object file | M instructions per step | share of step |",
                  "|---|---|---|"]
        for f in r["functions"]:
            lines.append(f"| {f['name']} | {f['per_step'] / 1e6:.3f} | "
                         f"{100 * f['per_step'] / r['instructions_per_step']:.1f} % |")
        lines.append("")
    (OUT / "int8_profile.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    sys.exit(main())
