"""`medyate demo`: the whole pipeline on a bundled model and task, in QEMU:
profile, LaRa ranking, a plan within a RAM budget, firmware build, and an
on-device fine-tuning session driven over the serial link."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .common import add_precision_arg, option

# Each bundled model's demo: a task at its input size and a schedule that finishes in a
# few minutes in QEMU. The real models run ~15x the tiny ones' instructions per step, so
# they see fewer samples; their int8 weights take a smaller peak lr (at 0.05 the 256 KiB
# plan's deeper layers diverge on fmnist-5to9-rgb128, at 0.01 they do not).
_REAL = dict(task="fmnist-5to9-rgb128", n_train=100, n_test=100, lr=0.01, ranking_samples=64)
_TINY = dict(task="fmnist-5to9", n_train=400, n_test=300, lr=0.05, ranking_samples=256)
DEMO_DEFAULTS = {"mcunet-5fps": _REAL, "proxyless-w0.3": _REAL, "mbv2-w0.35": _REAL,
                 "mbv2-tiny": _TINY, "mcunet-tiny": _TINY}
DEFAULT_MODEL = "mcunet-5fps"


def _fill_defaults(args) -> None:
    """The options left unset take the model's demo defaults."""
    from ..errors import MedyateError
    if args.model not in DEMO_DEFAULTS:
        raise MedyateError(f"unknown bundled model {args.model!r} for the demo; choose one "
                           f"of {', '.join(DEMO_DEFAULTS)} (`medyate plan` and `medyate "
                           "train` take any ONNX file)")
    for k, v in DEMO_DEFAULTS[args.model].items():
        if getattr(args, k) is None:
            setattr(args, k, v)


def _h(step: str) -> None:
    print(f"\n== {step}", flush=True)


def run(args) -> int:
    from ..algo.budget import format_size, parse_size
    from ..algo.plan import make_plan
    from ..data import bundled_model, load_task
    from ..profile import profile_graph
    from ..session.run import Progress
    from .plan import describe_plan

    t0 = time.perf_counter()
    _fill_defaults(args)
    from ..outputs import check_output_dir
    out = check_output_dir(args.out, "demo directory")
    from ..session.model import load_for_task
    bundled_model(args.model)
    task = load_task(args.task, n_train=args.n_train, n_test=args.n_test)
    path, graph, head = load_for_task(args.model, task=task, seed=args.seed)
    from .common import resolve_precision
    precision = resolve_precision(args.precision, graph)

    _h(f"1/4 profile {path.name}")
    tot = profile_graph(graph)["totals"]
    print(f"{tot['params']} parameters ({format_size(tot['param_bytes'])}), {tot['macs']} MACs "
          f"per sample, peak forward activations {format_size(tot['peak_forward_activation_bytes'])}")
    print(f"full fine-tuning would need about {format_size(tot['full_finetune']['training_bytes'])}"
          " of training memory (weights, their gradients, saved activations)")

    _h(f"2/4 plan: LaRa ranking on {task.name} ({len(task.x_train)} train / "
       f"{len(task.x_test)} test samples), RAM budget {args.ram}")
    plan, tp = make_plan(path, graph, task, ram=args.ram, layer_metric="lara",
                         board="qemu-mps2-an500", batch=args.batch, epochs=args.epochs,
                         lr=args.lr, seed=args.seed, head=head, precision=precision,
                         ranking_samples=args.ranking_samples)
    from ..data.record import data_record
    plan.data = data_record(task, args.task)
    out.mkdir(parents=True, exist_ok=True)
    plan.save(out / "plan.json")
    print(describe_plan(plan, tp, graph, "qemu-mps2-an500"))

    _h(f"3/4 build and train on qemu-mps2-an500 (Cortex-M7, F746 memory sizes), "
       f"{args.epochs} epochs")
    from types import SimpleNamespace

    from ..session.device_session import device_session
    from ..session.run_record import record_files, record_of
    # recorded as a `medyate train` of this plan, so `train --resume` continues it
    record = record_files(record_of(SimpleNamespace(
        model=args.model, data=args.task, n_train=args.n_train, n_test=args.n_test,
        data_seed=0, board="qemu-mps2-an500", epochs=args.epochs)), plan)
    summary = device_session(graph, plan, task, out / "run", board="qemu-mps2-an500", port=None,
                             epochs=args.epochs, resume=False, progress=Progress(),
                             title=f"{path.stem} on {task.name}: MeDyate", record=record)

    _h("4/4 result")
    hist = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    b, a = summary["before"]["test_acc"], summary["after"]["test_acc"]
    steps_instr = [r["instructions"] / len(task.x_train) for r in hist]
    stack = max(r.get("stack_high_water", 0) for r in hist)
    fw = summary["firmware"]
    budget = parse_size(args.ram)
    print(f"test accuracy: {100 * b:.1f}% before, {100 * a:.1f}% after fine-tuning "
          f"({len(hist)} epochs on the device)")
    print(f"RAM: {fw['ram']} B in the image (arena, trainable weights, static data, "
          f"{summary['memory']['stack']} B stack reserve; {stack} B of stack used) "
          f"= {100 * fw['ram'] / budget:.1f}% of the {args.ram} budget "
          f"({fw['ram_capacity']} B on the chip)")
    print(f"instructions per training step (one sample: forward, sparse backward, share of "
          f"the update): {min(steps_instr) / 1e6:.1f} M to {max(steps_instr) / 1e6:.1f} M")
    print(f"outputs: {out / 'run'}/ (metrics.jsonl, training.png, finetuned.onnx); "
          f"plan: {out / 'plan.json'}; {time.perf_counter() - t0:.0f} s in all")
    return 0


def _per_model(key: str) -> str:
    real, tiny = _REAL[key], _TINY[key]
    return f"default {real} for the real models, {tiny} for the tiny ones"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="the whole pipeline on a bundled model, fine-tuned in QEMU",
        description="Profile a bundled model, rank its layers with LaRa, plan the channel "
                    "budget within a RAM budget, build the firmware and fine-tune on the "
                    "emulated Cortex-M7 (QEMU, board qemu-mps2-an500), reporting accuracy "
                    "before and after, RAM against the budget, and instructions per "
                    "training step. The default is the ImageNet-pretrained int8 "
                    "mcunet-5fps at 3x128x128; the options not given take the model's "
                    "demo defaults.")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"bundled model: {', '.join(DEMO_DEFAULTS)} "
                        f"(default {DEFAULT_MODEL})")
    p.add_argument("--task", default=None,
                   help="builtin task at the model's input size: fmnist-5to9, digits, "
                        "fmnist-inv, or their -rgb128 versions for the real models "
                        f"({_per_model('task')})")
    p.add_argument("--ram", default="256KiB",
                   help="RAM budget for all of training (default 256KiB)")
    p.add_argument("--epochs", type=option("epochs"), default=4,
                   help="epochs on the device (default 4)")
    p.add_argument("--n-train", type=option("n_train"), default=None,
                   help=f"training samples ({_per_model('n_train')})")
    p.add_argument("--n-test", type=option("n_test"), default=None,
                   help=f"test samples ({_per_model('n_test')})")
    p.add_argument("--batch", type=option("batch"), default=8, help="mini-batch size (default 8)")
    p.add_argument("--lr", type=option("lr"), default=None,
                   help=f"peak learning rate of the schedule ({_per_model('lr')})")
    p.add_argument("--ranking-samples", type=option("ranking_samples"), default=None,
                   help="training samples of LaRa's ranking run "
                        f"({_per_model('ranking_samples')})")
    p.add_argument("--seed", type=option("seed"), default=0,
                   help="seed of the sampling and of the new head (default 0)")
    p.add_argument("--out", default="runs/demo",
                   help="directory of the plan and the run (default runs/demo)")
    add_precision_arg(p)
    p.set_defaults(func=run)
