"""Importance-weighted channel sampling without replacement, to fill a budget.

Given candidate channels with costs cost_i (elements) and importances I_i >= 0:

  1. weights w_i = I_i^(1/T) (T: temperature), computed in logs as
     log w_i = log(I_i) / T, with I_i floored at 1e-12 * max(I) so that a
     channel with zero measured gradient stays drawable at high T;
  2. a random priority order by weighted keys k_i = u_i^(1/w_i), u_i ~ U(0,1)
     (Efraimidis-Spirakis), computed as log w_i + G_i with G_i Gumbel(0,1)
     (the same order: log k_i = -Exp_i / w_i). Taking channels in this order is
     sampling without replacement with probability proportional to w_i at each
     draw;
  3. walk the order, take each channel whose cost fits in what is left of the
     budget, skip the others (later, smaller ones may still fit).

Limits, same code: T -> inf makes log w_i = 0 for all i, the order is the Gumbel
noise alone: uniform sampling (TraDy). T = 0 orders by importance, the noise only
breaking ties: deterministic top-importance selection. The result leaves less of
the budget unused than the cheapest channel not taken.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .trainer import LayerSpec, Pair

IMPORTANCE_FLOOR = 1e-12


def priority_order(importance: np.ndarray | None, temperature: float,
                   rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    """Indices in sampling order (see module doc). importance None = uniform."""
    if temperature < 0 or math.isnan(temperature):
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if importance is None:
        importance = np.ones(n)
    imp = np.asarray(importance, dtype=np.float64)
    if np.any(imp < 0) or not np.all(np.isfinite(imp)):
        raise ValueError("importances must be finite and >= 0")
    g = rng.gumbel(size=imp.size)       # drawn whatever T: same stream for all T
    top = imp.max() if imp.size else 0.0
    if top <= 0:
        log_imp = np.zeros(imp.size)
    else:
        log_imp = np.log(np.maximum(imp / top, IMPORTANCE_FLOOR))   # <= 0
    if temperature == 0:
        primary, noise = log_imp, 0.0
    else:
        primary, noise = log_imp / temperature, 1.0    # T = inf: exactly 0
    # lexsort: last key is primary; descending via negation
    return np.lexsort((-g, -(primary + noise * g)))


def fill_budget(costs: np.ndarray, order: np.ndarray, budget: int) -> np.ndarray:
    """Take channels in `order` while they fit; returns chosen indices, sorted."""
    costs = np.asarray(costs, dtype=np.int64)
    left = int(budget)
    cheapest = int(costs.min()) if costs.size else 0
    chosen = []
    for i in order:
        if left < cheapest:
            break
        c = int(costs[i])
        if c <= left:
            chosen.append(int(i))
            left -= c
    return np.sort(np.array(chosen, dtype=np.int64))


def sample_indices(costs: np.ndarray, importance: np.ndarray | None, budget: int,
                   temperature: float, rng: np.random.Generator) -> np.ndarray:
    order = priority_order(importance, temperature, rng, n=len(costs))
    return fill_budget(costs, order, budget)


def sample_selection(candidates: Sequence[Pair], specs: dict[str, LayerSpec],
                     importance: np.ndarray | None, budget: int, temperature: float,
                     rng: np.random.Generator) -> list[Pair]:
    """A selection (sorted (layer, channel) pairs) among `candidates` whose
    total cost fits `budget`. importance None = uniform."""
    costs = np.array([specs[n].cost for n, _ in candidates], dtype=np.int64)
    idx = sample_indices(costs, importance, budget, temperature, rng)
    return [candidates[i] for i in idx]
