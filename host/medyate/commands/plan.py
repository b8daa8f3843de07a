"""`medyate plan MODEL --data DATA --ram 256KiB --out plan.json`: rank the
layers on the user's data (LaRa or RGN), pre-select the top-K, and solve the
largest channel budget whose whole training footprint fits the RAM budget."""
from __future__ import annotations

from ..errors import MedyateError
from .common import add_data_args, add_model_args, load_data, load_model


def make_plan(path, graph, task, *, ram=None, elements=None, layer_metric="lara",
              board="nucleo-f746", strategy="medyate", temperature=1.0, train_bias=False,
              batch=8, epochs=10, lr=0.05, seed=0, ranking_samples=256):
    """Rank, pre-select, solve the budget against the whole footprint on `board`.
    Returns (TrainPlan, algo TrainingPlan)."""
    from ..algo.plan import plan_training, planner_memory_fn
    from ..algo.trainer import HostEngineFactory
    from ..planner.footprint import device_overhead
    from ..planner.plan import TrainPlan, file_sha256

    if (ram is None) == (elements is None):
        raise MedyateError("give a RAM budget (--ram 256KiB) or a channel budget (--elements N)")
    over = sum(device_overhead(board, graph).values())
    base = planner_memory_fn(graph)

    def memory_fn_for(layers, bias):
        fn = base(layers, bias)
        return lambda budget: fn(budget) + over

    from ..algo.budget import format_size, parse_size
    from ..algo.ranking import RankingRun, ranking_run
    from ..algo.schedule import lr_at

    factory = HostEngineFactory(graph)
    ranking = ranking_run(factory, task.x_train, task.y_train, samples=ranking_samples,
                          batch=batch, lr=lr_at(0, epochs, lr), seed=seed)
    kw = dict(ram=ram, elements=elements, memory_fn_for=memory_fn_for, metric=layer_metric,
              train_bias=train_bias, batch=batch, lr=lr, epochs=epochs, seed=seed)
    order = [s.name for s in factory.layers]
    # Backward must reach the deepest pre-selected layer, and everything it
    # needs on the way counts against the RAM. When the ranked layers do not
    # fit, keep only layers from deeper and deeper in the network.
    for k in range(len(order)):
        allowed = set(order[k:])
        run = ranking if k == 0 else RankingRun(
            [sp for sp in ranking.specs if sp.name in allowed],
            {n: e for n, e in ranking.energy.items() if n in allowed},
            ranking.steps, ranking.samples, ranking.loss, lr=ranking.lr,
            retries=ranking.retries)
        try:
            tp = plan_training(factory, task.x_train, task.y_train, ranking=run, **kw)
            break
        except MedyateError:
            if ram is None or k == len(order) - 1:
                if ram is None:
                    raise
                least = min(memory_fn_for([sp.name], train_bias)(sp.cost)
                            for sp in factory.layers)
                raise MedyateError(
                    f"training does not fit in {format_size(parse_size(ram))}: the smallest "
                    f"feasible RAM budget is {format_size(least)} (one channel of the cheapest "
                    f"layer)") from None
    if tp.lr != lr:
        print(f"note: the ranking run was finite only at lr {ranking.lr:g}; the session's "
              f"base learning rate is lowered from {lr:g} to {tp.lr:g}")
        lr = tp.lr
    if k > 0:
        print(f"note: backward through the whole network does not fit in {ram}; "
              f"pre-selection limited to the last {len(order) - k} of {len(order)} layers")
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=tp.layers,
                     budget_elements=tp.budget_elements, train_bias=train_bias,
                     batch=batch, epochs=epochs, lr=lr, seed=seed, strategy=strategy,
                     temperature=temperature, layer_metric=layer_metric,
                     ram_bytes=tp.ram_bytes, importance=tp.importance)
    return plan, tp


def plan_footprint(graph, plan, board: str) -> dict:
    from ..engine.host import memory_breakdown
    from ..planner.arena import plan_arena
    from ..planner.footprint import ram_footprint
    from ..planner.program import lower
    prog = lower(graph.copy(), plan.layers, plan.train_bias)
    plan_arena(prog, plan.budget_elements)
    return ram_footprint(memory_breakdown(prog), board, prog)


def describe_plan(plan, tp, graph, board: str) -> str:
    from ..algo.budget import format_size
    ram = plan_footprint(graph, plan, board)
    ranked = sorted(tp.scores.items(), key=lambda kv: -kv[1])
    lines = [f"{len(plan.layers)} of {len(tp.scores)} layers pre-selected "
             f"(top by {plan.layer_metric}):"]
    lines += [f"  {'*' if n in plan.layers else ' '} {v:10.4g}  {n}" for n, v in ranked]
    lines.append(f"channel budget: {plan.budget_elements} elements ({format_size(plan.budget_bytes)})")
    lines.append(f"RAM on {board}: arena {format_size(ram['arena'])} + trainable weights "
                 f"{format_size(ram['trainable_weights'])} + firmware static "
                 f"{format_size(ram['static'])} + stack {format_size(ram['stack'])} = "
                 f"{format_size(ram['total'])}"
                 + (f" of {format_size(tp.ram_bytes)}" if tp.ram_bytes else ""))
    return "\n".join(lines)


def run(args) -> int:
    path, graph = load_model(args)
    task = load_data(args, graph)
    print(f"ranking layers ({args.layer_metric}) on {task.name}: "
          f"{min(args.ranking_samples, len(task.x_train))} samples of full backprop ...", flush=True)
    plan, tp = make_plan(path, graph, task, ram=args.ram, elements=args.elements,
                         layer_metric=args.layer_metric, board=args.board,
                         strategy=args.strategy, temperature=args.temperature,
                         train_bias=args.train_bias, batch=args.batch, epochs=args.epochs,
                         lr=args.lr, seed=args.seed, ranking_samples=args.ranking_samples)
    plan.save(args.out)
    print()
    print(describe_plan(plan, tp, graph, args.board))
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
    p.add_argument("--ram", help="RAM budget for all of training, e.g. 256KiB, 300kB, 262144")
    p.add_argument("--elements", type=int, help="paper-style channel budget in elements instead")
    p.add_argument("--layer-metric", choices=("lara", "rgn"), default="lara")
    p.add_argument("--board", default="nucleo-f746",
                   help="board whose firmware overhead counts against --ram (default nucleo-f746)")
    p.add_argument("--strategy", default="medyate",
                   choices=("medyate", "trady", "static-random"),
                   help="how channels are drawn each epoch (default medyate)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature: large = uniform (TraDy), 0 = top importance")
    p.add_argument("--train-bias", action="store_true", help="also train the selected layers' biases")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ranking-samples", type=int, default=256)
    p.add_argument("--out", default="plan.json")
    p.set_defaults(func=run)
