"""`medyate build MODEL --plan plan.json --board B --out DIR [--report] [--data TASK]`:
generate the model's C sources for the plan and build them with CMake (a
shared library for the host, an ELF and a raw binary for a board), then report
every byte: flash (code, weights) and RAM (arena by part, trainable weights,
static data, stack). With --data, the task's samples go into flash next to the
model if they fit (session.firmware), else they are streamed."""
from __future__ import annotations

import json
from pathlib import Path

from .common import (add_data_args, add_model_args, add_precision_arg, load_model_and_data,
                     resolve_precision)


def run(args) -> int:
    from ..planner.plan import load_plan
    from ..session.firmware import build_and_place
    from ..session.memory_report import firmware_memory, format_firmware_memory

    from ..outputs import atomic_write, check_output_dir, output_dir

    out = check_output_dir(args.out, "build directory")
    plan = load_plan(args.plan)
    path, graph, task, _ = load_model_and_data(args, plan)
    plan.precision = resolve_precision(args.precision or plan.precision, graph)
    print(f"generating and building {path.name} for {args.board} in {out}/ ...", flush=True)
    # a build that fails (a plan that does not fit, an image that does not
    # link) leaves no build tree it created
    with output_dir(out, "build directory"):
        program, build, placement = build_and_place(graph, plan, args.board, out, task,
                                                    log=lambda s: print(s, flush=True))
    for name in ("elf", "bin", "map", "lib"):
        p = getattr(build, name)
        if p is not None:
            print(f"  {name:<4} {p}")
    rep = firmware_memory(program, build, args.board, plan.ram_bytes)
    if placement is not None:
        rep["dataset"] = {"placement": placement.where, "reason": placement.reason,
                          "image_bytes": placement.image_bytes,
                          "n_train": len(task.y_train), "n_test": len(task.y_test)}
    atomic_write(out / "memory.json", json.dumps(rep, indent=2, default=str) + "\n",
                 "memory report")
    if args.report:
        print()
        print(format_firmware_memory(rep))
        print(f"\n(JSON: {out / 'memory.json'})")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "build", help="generate C for a plan and build it for a board",
        description="Generate the model's C sources for the training plan (frozen weights "
                    "const in flash, pre-selected layers' weights in RAM, the arena offsets "
                    "table) and build them with CMake for a board: a shared library for the "
                    "host, an ELF and a raw binary for the boards. An image that does not fit "
                    "the chip does not link. With --data the task's samples are built into flash "
                    "when firmware and dataset fit the board's flash, else they are to be "
                    "streamed over serial; the command says which.")
    add_model_args(p)
    p.add_argument("--plan", required=True, help="plan.json (required)")
    p.add_argument("--board", default="qemu-mps2-an500",
                   help="host, qemu-mps2-an500 or nucleo-f746 (see `medyate boards`) "
                        "(default qemu-mps2-an500)")
    p.add_argument("--out", required=True, help="output directory (required)")
    p.add_argument("--report", action="store_true",
                   help="print the memory report (default: only memory.json)")
    add_data_args(p, required=False, absent="no samples in flash: a session streams them")
    add_precision_arg(p, of_plan=True)
    p.set_defaults(func=run)
