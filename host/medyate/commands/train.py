"""`medyate train MODEL --plan plan.json --data DATA --board B --out RUN/`:
the fine-tuning session, in host simulation (--board host) or on a device
(QEMU started here, or a real board behind --port)."""
from __future__ import annotations

from pathlib import Path

from ..errors import MedyateError
from .common import (add_data_args, add_model_args, add_precision_arg, load_model_and_data,
                     option, resolve_precision)


def run(args) -> int:
    from ..planner.plan import load_plan
    from ..session.run import Progress, run_session
    from ..session.run_record import fill_from_record, record_files, record_of

    if not (args.resume or args.out):
        raise MedyateError("give --out RUN/ (or --resume RUN/ to continue a session)")
    out = Path(args.resume or args.out)
    if args.resume:
        if not out.is_dir():
            raise MedyateError(f"--resume {out}: no such run directory")
        # what is not repeated comes from the run directory; its board is kept
        from ..session.checkpoint import CHECKPOINT, checkpoint_board
        fill_from_record(args, out, checkpoint_board(out / CHECKPOINT))
    else:
        missing = [f for f, v in (("MODEL", args.model), ("--plan", args.plan),
                                  ("--data", args.data)) if v is None]
        if missing:
            raise MedyateError(f"give {', '.join(missing)} (only --resume RUN/ takes them "
                               "from the run directory)")
        from ..outputs import check_output_dir
        check_output_dir(out, "run directory")
        # a finished or interrupted run is not overwritten by accident: its metrics
        # and checkpoint would be mixed with the new session's
        if out.is_dir() and any(out.iterdir()) and not args.force:
            raise MedyateError(f"--out {out}: the directory is not empty (an earlier run?); "
                               f"give --force to train into it anyway, --resume {out} to "
                               f"continue its session, or another --out")
    args.board = args.board or "host"
    args.data_seed = 0 if args.data_seed is None else args.data_seed
    args.retries = 5 if args.retries is None else args.retries
    plan = load_plan(args.plan)
    path, graph, task, _ = load_model_and_data(args, plan)
    record = record_files(record_of(args), plan)
    plan.precision = resolve_precision(args.precision or plan.precision, graph)
    val = None
    if args.val_split is not None:
        from ..session.run import split_validation
        task, val = split_validation(task, args.val_split, plan.seed)
        print(f"validation: {len(val[1])} of {len(val[1]) + len(task.y_train)} training samples "
              f"held out (seeded by the plan's seed); finetuned.onnx will be the epoch with "
              f"the best validation accuracy")
    progress = Progress()
    title = f"{path.stem} on {task.name}: {plan.strategy}, budget {plan.budget_elements} elements"
    if args.board == "host":
        from ..algo.trainer import HostEngineFactory
        factory = HostEngineFactory(graph, precision=plan.precision)
        summary = run_session(graph, plan, task, factory, out, args.epochs,
                              resume=bool(args.resume), progress=progress,
                              title=title + " (host)", val=val, board="host",
                              record=record)
    else:
        from ..session.device_session import device_session
        summary = device_session(graph, plan, task, out, board=args.board, port=args.port,
                                 epochs=args.epochs, resume=bool(args.resume),
                                 progress=progress, title=title, build_dir=args.build_dir,
                                 val=val, frame_size=args.frame_size, retries=args.retries,
                                 record=record)
    b, a = summary["before"]["test_acc"], summary["after"]["test_acc"]
    print(f"test accuracy {100 * b:.1f}% -> {100 * a:.1f}%; outputs in {out}/")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune: host simulation, QEMU, or a device on a serial port",
        description="Run the fine-tuning session of a plan. Each epoch the device (or the "
                    "host simulation) trains the sampled channels, reports their gradient "
                    "statistics, and gets the next sample. Writes RUN/metrics.jsonl, "
                    "RUN/finetuned.onnx, RUN/training.png, RUN/summary.json, and a "
                    "checkpoint after every epoch (continue with --resume RUN/).")
    # With --resume, MODEL, --plan, --data and the others default to what the
    # run directory recorded (session.run_record): their parser defaults are None.
    add_model_args(p, required=False)
    p.add_argument("--plan", help="plan.json from `medyate plan` (required; with --resume, "
                                  "default: the run's copy RUN/plan.json)")
    add_data_args(p, required=False, absent="required, but with --resume the run's")
    add_precision_arg(p, of_plan=True)
    p.set_defaults(data_seed=None)
    p.add_argument("--board",
                   help="host (simulation), qemu-mps2-an500, or nucleo-f746 (with --port) "
                        "(default: host; with --resume, the run's board, and no other)")
    p.add_argument("--port", help="serial port or pyserial URL of a running device "
                                  "(e.g. /dev/ttyACM0) (default: none; QEMU is started for "
                                  "qemu-mps2-an500)")
    p.add_argument("--frame-size", type=option("frame_size"), metavar="BYTES",
                   help="largest frame payload to send or ask for (default: the device's "
                        "limit); smaller frames survive a noisy line better")
    p.add_argument("--retries", type=option("retries"),
                   help="resends of a request without a valid answer before the session "
                        "gives up (default 5); raise it on a noisy line")
    p.add_argument("--epochs", type=option("epochs"), help="epochs to train (default: the plan's; with --resume, the run's)")
    p.add_argument("--val-split", type=float, metavar="FRACTION",
                   help="hold out this fraction of the training data (per class, seeded by "
                        "the plan's seed) for validation; finetuned.onnx is then the epoch "
                        "with the best validation accuracy (default: none, the last epoch)")
    p.add_argument("--out", help="run directory (new or empty; see --force) (required unless --resume)")
    p.add_argument("--force", action="store_true",
                   help="train into a non-empty --out directory, replacing its run "
                        "(default: refuse)")
    p.add_argument("--resume", metavar="RUN",
                   help="continue the session in RUN/ from its checkpoint; what is not "
                        "repeated (model, plan, data, board, ...) is taken from RUN/run.json "
                        "(default: a new session, see --out)")
    p.add_argument("--build-dir", help="where to build the firmware (default RUN/firmware)")
    p.set_defaults(func=run)
