"""`medyate plan MODEL --data DATA --ram 256KiB --out plan.json`: rank the
layers on the user's data (LaRa or RGN), pre-select the top-K, and solve the
largest channel budget whose whole training footprint fits the RAM budget."""
from __future__ import annotations

from ..strategy_names import PLANNED_STRATEGIES
from .common import add_data_args, add_model_args, add_precision_arg, load_model_and_data, option


def describe_plan(plan, tp, graph, board: str) -> str:
    from ..algo.budget import format_size
    from ..planner.footprint import plan_footprint
    ram = plan_footprint(graph, plan, board)
    ranked = sorted(tp.scores.items(), key=lambda kv: -kv[1])
    full = [n for n in plan.layers if n not in tp.scores]   # outside the ranking: a new head
    lines = [f"{len(plan.layers) - len(full)} of {len(tp.scores)} ranked layers pre-selected "
             f"(top by {plan.layer_metric})"
             + (f", and {', '.join(full)} trained in full every epoch" if full else "") + ":"]
    lines += [f"  {'*' if n in plan.layers else ' '} {v:10.4g}  {n}" for n, v in ranked]
    lines.append(f"precision: {plan.precision}")
    lines.append(f"channel budget: {plan.budget_elements} elements ({format_size(plan.budget_bytes)})")
    lines.append(f"RAM on {board}: arena {format_size(ram['arena'])} + trainable weights "
                 f"{format_size(ram['trainable_weights'])} + firmware static "
                 f"{format_size(ram['static'])} + stack {format_size(ram['stack'])} = "
                 f"{format_size(ram['total'])}"
                 + (f" of {format_size(tp.ram_bytes)}" if tp.ram_bytes else ""))
    return "\n".join(lines)


def run(args) -> int:
    from ..outputs import check_output_file
    check_output_file(args.out, "plan")
    path, graph, task, head = load_model_and_data(args)
    print(f"ranking layers ({args.layer_metric}) on {task.name}: "
          f"{min(args.ranking_samples, len(task.x_train))} samples of full backprop ...", flush=True)
    from ..algo.plan import make_plan
    from .common import resolve_precision
    precision = resolve_precision(args.precision, graph)
    plan, tp = make_plan(path, graph, task, ram=args.ram, elements=args.elements,
                         layer_metric=args.layer_metric, board=args.board,
                         strategy=args.strategy, temperature=args.temperature,
                         train_bias=args.train_bias, batch=args.batch, epochs=args.epochs,
                         lr=args.lr, seed=args.seed, ranking_samples=args.ranking_samples,
                         head=head, precision=precision)
    from ..data.record import data_record
    plan.data = data_record(task, args.data, args.data_seed)
    plan.input_shape = list(args.resolved_input_shape)
    # described (which lays out its arena) before it is written: a plan that
    # cannot be laid out is never written
    text = describe_plan(plan, tp, graph, args.board)
    plan.save(args.out)
    print()
    print(text)
    print(f"wrote {args.out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plan", help="rank layers and solve the channel budget for a RAM budget",
        description="Rank the model's layers on your data with a short full-backprop run "
                    "(LaRa or TraDy's RGN), pre-select the top-K, and find the largest "
                    "channel budget whose whole training footprint (arena, trainable "
                    "weights, firmware static data, stack) fits the RAM budget. Writes "
                    "plan.json (readable, editable).")
    add_model_args(p)
    add_data_args(p)
    add_precision_arg(p)
    # exactly one budget, checked by argparse: a missing budget is said before the
    # data is read and the ranking run spent
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--ram", help="RAM budget for all of training, e.g. 256KiB, 300kB, "
                                      "262144 (this or --elements is required)")
    budget.add_argument("--elements", type=option("elements"),
                        help="paper-style channel budget in elements instead of --ram (this or "
                             "--ram is required)")
    p.add_argument("--layer-metric", choices=("lara", "rgn"), default="lara",
                   help="layer ranking: LaRa or TraDy's RGN (default lara)")
    p.add_argument("--board", default="nucleo-f746",
                   help="board whose firmware overhead counts against --ram (default nucleo-f746)")
    p.add_argument("--strategy", default="medyate",
                   choices=PLANNED_STRATEGIES,
                   help="how channels are drawn each epoch (default medyate)")
    p.add_argument("--temperature", type=option("temperature"), default=1.0,
                   help="sampling temperature: large = uniform (TraDy), 0 = top importance "
                        "(default 1.0)")
    p.add_argument("--train-bias", action="store_true", help="also train the selected layers' biases (default: weights only)")
    p.add_argument("--batch", type=option("batch"), default=8,
                   help="mini-batch size of the session (default 8)")
    p.add_argument("--epochs", type=option("epochs"), default=10,
                   help="epochs of the session (default 10)")
    p.add_argument("--lr", type=option("lr"), default=None,
                   help="peak learning rate of the schedule (default: chosen by a short "
                        "learning-rate range test on the ranking run's samples)")
    p.add_argument("--seed", type=option("seed"), default=0,
                   help="seed of the session's sampling and of a new classifier head when "
                        "the model's outputs differ from the task's classes (default 0)")
    p.add_argument("--ranking-samples", type=option("ranking_samples"), default=256,
                   help="training samples of the full-backprop ranking run (default 256)")
    p.add_argument("--out", default="plan.json", help="the plan file to write (default plan.json)")
    p.set_defaults(func=run)
