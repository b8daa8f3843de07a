"""What `medyate plan` decides, as a function: rank the layers on the user's data,
pre-select the top-K, and size the channel budget to the RAM budget.

The layers and the budget depend on each other: the budget that fits a RAM limit
depends on which layers train (backward reaches the deepest one), and how many
layers are kept depends on what the budget can use. `plan_training` starts from
the coverage pre-selection, solves the budget for it, extends the layers if that
budget exceeds what they can hold, and repeats until nothing changes.
`make_plan` runs it on the host engine against a board's whole footprint,
restricting the pre-selection to deeper layers when backward through the
ranked ones cannot fit, and returns the plan.json record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..errors import MedyateError
from .budget import format_size, parse_size, solve_budget
from .ranking import (LR_RANGE_DIVISOR, RankingRun, layer_scores, lr_range_test, preselect,
                      ranking_run)
from .schedule import lr_at
from .sampling import sample_selection
from .trainer import EngineFactory, HostEngineFactory, Pair, all_pairs

# for_layers(trainable, train_bias, bias_only=()) -> memory_fn(budget) -> bytes
MemoryFnFor = Callable[..., Callable[[int], int]]


def planner_memory_fn(graph, board=None, precision: str = "fp32") -> MemoryFnFor:
    """memory_fn from the planner's exact figures for a set of trainable
    layers: arena + trainable weights in RAM, and with `board` also the
    firmware's static data and stack there (planner.footprint).
    `bias_only` names trainable layers whose weights stay frozen (only their
    bias trains, planner.program.lower): their weights count as flash, not RAM."""
    from ..planner.arena import plan_arena
    from ..planner.footprint import memory_breakdown, ram_footprint
    from ..planner.program import lower

    def for_layers(trainable, train_bias, bias_only=()):
        def memory_fn(budget: int) -> int:
            prog = lower(graph.copy(), list(trainable), train_bias, precision, list(bias_only))
            plan_arena(prog, int(budget))
            if board is None:
                return int(memory_breakdown(prog)["total"])
            return int(ram_footprint(prog, board)["total"])
        return memory_fn
    return for_layers


@dataclass
class TrainingPlan:
    layer_metric: str
    scores: dict[str, float]
    layers: list[str]                 # pre-selected, model order
    budget_elements: int
    ram_bytes: int | None
    memory_bytes: int | None          # memory_fn(budget) when solved from RAM
    importance: dict[str, list[float]] = field(default_factory=dict)
    ranking: RankingRun | None = None
    lr: float | None = None           # the session's base learning rate
    too_big: list[str] = field(default_factory=list)  # left out: one channel exceeds the RAM


def plan_training(factory: EngineFactory, x: np.ndarray, y: np.ndarray, *,
                  ram: int | str | None = None, elements: int | None = None,
                  memory_fn_for: MemoryFnFor | None = None, metric: str = "lara",
                  coverage: float = 0.97, train_bias: bool = False,
                  ranking_samples: int = 256, batch: int = 32, lr: float = 0.05,
                  epochs: int = 10, warmup: int = 5, seed: int = 0,
                  ranking: RankingRun | None = None, always: Sequence[str] = (),
                  log: Callable[[str], None] | None = None) -> TrainingPlan:
    """Rank, pre-select and size the budget: from a RAM budget (with
    memory_fn_for, e.g. `planner_memory_fn(graph)`) or a channel budget in
    elements. The ranking run uses the schedule's first-epoch learning rate.
    `always`: layers trained in full every epoch (a new head), outside the
    ranking; they are in the plan's layers and their cost in its budget."""
    if (ram is None) == (elements is None):
        raise MedyateError("give either a RAM budget or a channel budget in elements")
    first = lr_at(0, epochs, lr, warmup)
    if ranking is None:
        ranking = ranking_run(factory, x, y, samples=ranking_samples, batch=batch,
                              lr=first, seed=seed, **({"log": log} if log else {}))
    # The ranking run is the session's first epoch with every channel trained:
    # if it only stayed finite at a lower learning rate, the session's
    # schedule is lowered by the same factor.
    session_lr = lr * ranking.lr / first if ranking.retries and ranking.lr else lr
    always = [n for n in always if n in {sp.name for sp in ranking.specs}]
    scores = {n: v for n, v in layer_scores(ranking, metric).items() if n not in always}
    specs = {s.name: s for s in factory.layers}
    ranked = [specs[n] for n in scores]
    order = [s.name for s in factory.layers]
    fixed = sum(specs[n].total_cost for n in always)
    ram_bytes = parse_size(ram) if ram is not None else None
    memory = None
    if elements is not None:
        budget = int(elements)
        if budget < fixed:
            raise MedyateError(f"a budget of {budget} elements does not hold the layers "
                               f"trained in full ({', '.join(always)}: {fixed} elements)")
        layers = preselect(scores, coverage, specs=ranked, budget=budget - fixed) + always
    else:
        if memory_fn_for is None:
            raise ValueError("a RAM budget needs memory_fn_for")
        layers = preselect(scores, coverage) + always
        budget = None
        for _ in range(len(order) + 1):
            fn = memory_fn_for(sorted(layers, key=order.index), train_bias)
            most = sum(specs[n].total_cost for n in layers)
            rest = [specs[n].cost for n in layers if n not in always]
            least = fixed + (min(rest) if rest else 0)
            budget = solve_budget(ram_bytes, fn, least, most)
            memory = int(fn(budget))
            more = preselect(scores, coverage, specs=ranked, budget=budget - fixed) + always
            if set(more) <= set(layers):
                break
            layers = more
    layers = sorted(set(layers), key=order.index)
    importance = {n: [float(v) for v in ranking.energy[n]] for n in layers}
    return TrainingPlan(metric, scores, layers, int(budget), ram_bytes, memory,
                        importance, ranking, session_lr)


def _one_channel_ram(factory: EngineFactory, memory_fn_for: MemoryFnFor,
                     train_bias: bool = False, always: Sequence[str] = ()) -> dict[str, int]:
    """{layer: whole-device RAM of training one input channel of it (backward
    reaching only that layer) beside the `always` layers in full}, every layer
    but those."""
    order = [s.name for s in factory.layers]
    specs = {s.name: s for s in factory.layers}
    always = [n for n in always if n in specs]
    fixed = sum(specs[n].total_cost for n in always)
    return {sp.name: int(memory_fn_for(sorted({sp.name, *always}, key=order.index),
                                       train_bias)(fixed + sp.cost))
            for sp in factory.layers if sp.name not in always}


def layers_too_big(factory: EngineFactory, ram, memory_fn_for: MemoryFnFor,
                   train_bias: bool = False, always: Sequence[str] = ()) -> list[str]:
    """The layers that do not fit `ram` even with one input channel trained
    (beside the `always` layers in full), model order. A trainable layer's whole
    weight array lives in RAM, since any of its channels may be drawn, so a wide
    pointwise layer can exceed the budget where a deeper-reaching depthwise one
    does not: such layers are left out of the ranking instead of cutting the
    pre-selection off above them."""
    ram_bytes = parse_size(ram)
    return [n for n, b in _one_channel_ram(factory, memory_fn_for, train_bias, always).items()
            if b > ram_bytes]


def plan_deepest_fit(factory: EngineFactory, x: np.ndarray, y: np.ndarray,
                     ranking: RankingRun, **kw) -> tuple[TrainingPlan, int]:
    """plan_training on `ranking`; with a RAM budget that the ranked layers do
    not fit, again with the layers from deeper and deeper in the network only.
    Returns the plan and how many leading layers were left out (0: none).
    Backward must reach the deepest pre-selected layer, and everything it
    needs on the way counts against the RAM: dropping early layers is what
    makes a plan fit."""
    ram, train_bias = kw.get("ram"), kw.get("train_bias", False)
    order = [s.name for s in factory.layers]
    unfit = set(layers_too_big(factory, ram, kw["memory_fn_for"], train_bias,
                               kw.get("always", ()))) if ram is not None else set()
    tried = None
    for k in range(len(order)):
        allowed = set(order[k:]) - unfit
        if allowed == tried and k < len(order) - 1:
            continue                  # order[k - 1] was left out already
        tried = allowed
        if not allowed - set(kw.get("always", ())):
            break
        run = ranking if k == 0 and not unfit else RankingRun(
            [sp for sp in ranking.specs if sp.name in allowed],
            {n: e for n, e in ranking.energy.items() if n in allowed},
            ranking.steps, ranking.samples, ranking.loss, lr=ranking.lr,
            retries=ranking.retries)
        try:
            tp = plan_training(factory, x, y, ranking=run, **kw)
            tp.too_big = [n for n in order if n in unfit]
            return tp, k
        except MedyateError:
            if ram is None:
                raise
    always = [n for n in kw.get("always", ()) if n in order]
    least, layer = smallest_feasible_ram(factory, kw["memory_fn_for"], train_bias, always)
    besides = f", besides {', '.join(always)} trained in full" if always else ""
    raise MedyateError(
        f"training does not fit in {format_size(parse_size(ram))}: the smallest "
        f"feasible RAM budget is {format_size(least)} (one channel of {layer}, the "
        f"cheapest layer{besides})")


def smallest_feasible_ram(factory: EngineFactory, memory_fn_for: MemoryFnFor,
                          train_bias: bool = False,
                          always: Sequence[str] = ()) -> tuple[int, str]:
    """(bytes, layer) of the cheapest plan that trains anything: one input
    channel of one layer, backward reaching only that layer, beside the `always`
    layers (a new head) in full, as every plan holds them."""
    return min((b, n) for n, b in
               _one_channel_ram(factory, memory_fn_for, train_bias, always).items())


def _first_selection(factory, tp: TrainingPlan, always, seed: int) -> list[Pair]:
    """A selection like a session's first: the `always` layers' every channel
    and a uniform, seeded sample of the plan's other layers filling the rest of
    its budget."""
    specs = {s.name: s for s in factory.layers}
    fixed = all_pairs([specs[n] for n in always])
    rest = tp.budget_elements - sum(specs[n].total_cost for n in always)
    candidates = all_pairs([specs[n] for n in tp.layers if n not in always])
    picked = sample_selection(candidates, specs, None, max(rest, 0), 1.0,
                              np.random.default_rng([seed, 0x4C5253]))
    return sorted(fixed + picked)


def make_plan(path, graph, task, *, ram=None, elements=None, layer_metric="lara",
              board="nucleo-f746", strategy="medyate", temperature=1.0, train_bias=False,
              batch=8, epochs=10, lr=None, seed=0, ranking_samples=256, head=None,
              precision="fp32", log=print):
    """What `medyate plan` decides: rank the layers on `task` with the host
    engine, pre-select, and solve the budget against the whole footprint on
    `board`. When backward through the ranked layers does not fit the RAM,
    the pre-selection is restricted to deeper and deeper layers. Notes on what
    was changed go to `log`. `graph` is the model as it will train: with a new
    head for the task's classes (`planner.plan.new_head`, recorded as `head`)
    when the commands load it (`session.model.load_for_task`).
    Returns (TrainPlan for plan.json, TrainingPlan)."""
    from ..planner.plan import TrainPlan, file_sha256

    if (ram is None) == (elements is None):
        raise MedyateError("give a RAM budget (--ram 256KiB) or a channel budget (--elements N)")
    memory_fn_for = planner_memory_fn(graph, board, precision)

    factory = HostEngineFactory(graph, precision=precision)
    lr_test = None
    if lr is None:
        # No learning rate given: the one this model tolerates on this data,
        # from a range test on the ranking run's samples.
        lr_test = lr_range_test(factory, task.x_train, task.y_train, samples=ranking_samples,
                                batch=batch, seed=seed)
        lr = lr_test.lr
        log(f"learning rate {lr:.3g}: range test on {ranking_samples} samples, lowest held-out "
            f"loss at lr {lr_test.lr_min_loss:.3g} (full backprop), /{LR_RANGE_DIVISOR:.3g}")
    ranking = ranking_run(factory, task.x_train, task.y_train, samples=ranking_samples,
                          batch=batch, lr=lr_at(0, epochs, lr), seed=seed)
    # a new head is random: it trains in full every epoch, whatever is sampled
    always = [head["layer"]] if head else []
    kw = dict(ram=ram, elements=elements, memory_fn_for=memory_fn_for, metric=layer_metric,
              train_bias=train_bias, batch=batch, lr=lr, epochs=epochs, seed=seed,
              always=always)
    order = [s.name for s in factory.layers]
    tp, k = plan_deepest_fit(factory, task.x_train, task.y_train, ranking, **kw)
    if tp.lr != lr:
        log(f"note: the ranking run was finite only at lr {ranking.lr:g}; the session's "
            f"base learning rate is lowered from {lr:g} to {tp.lr:g}")
        lr = tp.lr
    if lr_test is not None and head:
        # A new head is random and learns from scratch, which takes a larger
        # step than adapting pre-trained weights; a full-backprop sweep stops
        # where the pre-trained body blows up first. Sweep what the session
        # trains instead: the head in full and a sample of the plan's channels.
        lr_test = lr_range_test(factory, task.x_train, task.y_train, samples=ranking_samples,
                                batch=batch, seed=seed, train_bias=train_bias,
                                selection=_first_selection(factory, tp, always, seed))
        lr = tp.lr = lr_test.lr
        log(f"learning rate {lr:.3g} for the new head: range test over the trained subnetwork "
            f"({len(tp.layers)} layers), lowest held-out loss at lr {lr_test.lr_min_loss:.3g}, "
            f"/{LR_RANGE_DIVISOR:.3g}")
    if tp.too_big:
        log(f"note: {len(tp.too_big)} of {len(order)} layers do not fit in {ram} even with one "
            f"channel trained (their weights in RAM); left out of the ranking")
    if k > 0:
        log(f"note: backward through the whole network does not fit in {ram}; "
            f"pre-selection limited to the last {len(order) - k} of {len(order)} layers")
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=tp.layers,
                     budget_elements=tp.budget_elements, train_bias=train_bias,
                     batch=batch, epochs=epochs, lr=lr, seed=seed, strategy=strategy,
                     temperature=temperature, layer_metric=layer_metric,
                     ram_bytes=tp.ram_bytes, importance=tp.importance,
                     lr_source="range-test" if lr_test else "given",
                     lr_range_test=lr_test.as_dict() if lr_test else None,
                     head=head, precision=precision)
    return plan, tp
