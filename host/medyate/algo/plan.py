"""What `medyate plan` decides, as a function: rank the layers on the user's data,
pre-select the top-K, and size the channel budget to the RAM budget.

The layers and the budget depend on each other: the budget that fits a RAM limit
depends on which layers train (backward reaches the deepest one), and how many
layers are kept depends on what the budget can use. `plan_training` starts from
the coverage pre-selection, solves the budget for it, extends the layers if that
budget exceeds what they can hold, and repeats until nothing changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..errors import MedyateError
from .budget import parse_size, solve_budget
from .ranking import RankingRun, layer_scores, preselect, ranking_run
from .schedule import lr_at
from .trainer import EngineFactory

MemoryFnFor = Callable[[Sequence[str], bool], Callable[[int], int]]


def planner_memory_fn(graph) -> MemoryFnFor:
    """memory_fn from the planner's exact figures (arena + trainable weights in
    RAM) for a set of trainable layers."""
    from ..engine.host import memory_breakdown
    from ..planner.arena import plan_arena
    from ..planner.program import lower

    def for_layers(trainable, train_bias):
        def memory_fn(budget: int) -> int:
            prog = lower(graph.copy(), list(trainable), train_bias)
            plan_arena(prog, int(budget))
            return int(memory_breakdown(prog)["total"])
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


def plan_training(factory: EngineFactory, x: np.ndarray, y: np.ndarray, *,
                  ram: int | str | None = None, elements: int | None = None,
                  memory_fn_for: MemoryFnFor | None = None, metric: str = "lara",
                  coverage: float = 0.97, train_bias: bool = False,
                  ranking_samples: int = 256, batch: int = 32, lr: float = 0.05,
                  epochs: int = 10, warmup: int = 5, seed: int = 0,
                  ranking: RankingRun | None = None,
                  log: Callable[[str], None] | None = None) -> TrainingPlan:
    """Rank, pre-select and size the budget: from a RAM budget (with
    memory_fn_for, e.g. `planner_memory_fn(graph)`) or a channel budget in
    elements. The ranking run uses the schedule's first-epoch learning rate."""
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
    scores = layer_scores(ranking, metric)
    specs = {s.name: s for s in factory.layers}
    order = [s.name for s in factory.layers]
    ram_bytes = parse_size(ram) if ram is not None else None
    memory = None
    if elements is not None:
        budget = int(elements)
        layers = preselect(scores, coverage, specs=list(specs.values()), budget=budget)
    else:
        if memory_fn_for is None:
            raise ValueError("a RAM budget needs memory_fn_for")
        layers = preselect(scores, coverage)
        budget = None
        for _ in range(len(order) + 1):
            fn = memory_fn_for(sorted(layers, key=order.index), train_bias)
            most = sum(specs[n].total_cost for n in layers)
            least = min(specs[n].cost for n in layers)
            budget = solve_budget(ram_bytes, fn, least, most)
            memory = int(fn(budget))
            more = preselect(scores, coverage, specs=list(specs.values()), budget=budget)
            if set(more) <= set(layers):
                break
            layers = more
    layers = sorted(layers, key=order.index)
    importance = {n: [float(v) for v in ranking.energy[n]] for n in layers}
    return TrainingPlan(metric, scores, layers, int(budget), ram_bytes, memory,
                        importance, ranking, session_lr)
