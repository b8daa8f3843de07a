"""Layer ranking: which layers may have channels trained.

Both metrics come from one short full-backprop fine-tuning run on the user's
training data (`ranking_run`): every channel of every trainable layer selected,
biases trained, a few hundred samples, plain SGD. The engine reports for each
channel S_c = sum over the run's SGD steps of ||dL/dW[:, c]||^2; with `steps`
steps, E_c = S_c / steps is its mean squared gradient norm per step.

Metrics (registry `LAYER_METRICS`, extend with `register_metric`):

  rgn     TraDy's reweighted gradient norm with the squared norm (one published
          note uses it), per channel
              RGN_c = ||g_c||^2 / cost(c) = E_c / cost(c),
          layer score = sum of its channels' RGN_c. Chosen over the plain norm
          by measurement (docs/ALGORITHM.md: Spearman 0.95-0.96 against a
          per-layer training oracle, vs 0.80-0.81 for the norm).
  rgn_norm  the same with the plain norm, RGN_c = ||g_c|| / cost(c),
          ||g_c|| = sqrt(E_c) (RMS over the run's steps).
  lara    this project's reading of MeDyate's memory-normalised layer ranking
          (the published formula is not public): the layer's gradient energy per
          byte of channel-pool memory,
              LaRa_l = sum_c E_c / (4 * sum_c cost(c))
          i.e. the first-order loss decrease per SGD step (per unit lr) that
          training the whole layer buys, per byte it would occupy. It is a ratio
          of sums, so a wide layer is not favoured for being wide (unlike the
          summed RGN), and a few cheap noisy channels cannot dominate it.

`preselect` keeps the top-K layers by cumulative score (TraDy: 97%), extended if
needed until the kept layers can fill the channel budget.

A ranking run that diverges (a non-finite loss or channel energy) would rank
nothing: every score NaN, one arbitrary layer pre-selected. It is detected and
redone from the pre-trained weights at a tenth of the learning rate, at most
`retries` times, then refused with an error; nothing non-finite leaves it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import math
import sys

import numpy as np

from ..errors import MedyateError
from .trainer import (EngineFactory, LayerSpec, Pair, all_pairs, from_engine_stats,
                      to_engine_pairs)


@dataclass
class RankingRun:
    specs: list[LayerSpec]
    energy: dict[str, np.ndarray]     # E_c per layer (mean ||g_c||^2 per SGD step)
    steps: int
    samples: int
    loss: float
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # cache
    lr: float | None = None           # the learning rate it ran at (after retries)
    retries: int = 0                  # how often it diverged and was redone


def nonfinite(loss: float, energy: Mapping[str, np.ndarray]) -> str | None:
    """What is not finite in a run's loss and per-channel energies, or None."""
    bad = []
    if not np.isfinite(loss):
        bad.append(f"loss {loss}")
    layers = [n for n, e in energy.items() if not np.all(np.isfinite(e))]
    if layers:
        chans = sum(int(np.sum(~np.isfinite(energy[n]))) for n in layers)
        bad.append(f"{chans} channel energies in {len(layers)} of {len(energy)} layers")
    return ", ".join(bad) or None


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ranking_run(factory: EngineFactory, x: np.ndarray, y: np.ndarray, *,
                samples: int = 256, batch: int = 32, lr: float = 1e-3,
                epochs: int = 1, seed: int = 0,
                layers: Sequence[str] | None = None, retries: int = 3,
                backoff: float = 0.1, log: Callable[[str], None] = _stderr) -> RankingRun:
    """Short full-backprop fine-tuning on `samples` training samples (a seeded
    random subset), all channels of all trainable layers selected.

    If it diverges (non-finite loss or energies) it is redone from the
    pre-trained weights at `backoff` times the learning rate, saying so through
    `log`, at most `retries` times; then MedyateError."""
    lr0 = float(lr)
    for attempt in range(retries + 1):
        run = _ranking_pass(factory, x, y, samples, batch, lr, epochs, seed, layers)
        bad = nonfinite(run.loss, run.energy)
        if bad is None:
            run.lr, run.retries = float(lr), attempt
            return run
        if attempt == retries:
            break
        log(f"ranking run diverged at lr {lr:g} ({bad} not finite); "
            f"retrying from the pre-trained weights at lr {lr * backoff:g}")
        lr = lr * backoff
    raise MedyateError(
        f"the ranking run diverged at every learning rate tried ({lr0:g} down to {lr:g}, "
        f"{retries + 1} runs): {bad} not finite. Check the model's weights and the data "
        "for NaN/inf, or give a smaller --lr")


def _ranking_pass(factory, x, y, samples, batch, lr, epochs, seed, layers) -> RankingRun:
    specs = [s for s in factory.layers if layers is None or s.name in set(layers)]
    if not specs:
        raise ValueError("no trainable layers to rank")
    names = [s.name for s in specs]
    eng = factory(names, sum(s.total_cost for s in specs), True)
    rng = np.random.default_rng([seed, 0x4c61526a])
    n = min(int(samples), len(x))
    subset = np.sort(rng.choice(len(x), size=n, replace=False))
    pairs = all_pairs(specs)
    epairs = to_engine_pairs(eng, pairs)
    eng.set_selection(epairs)
    sums = {s.name: np.zeros(s.channels) for s in specs}
    steps, loss = 0, float("nan")
    for _ in range(epochs):
        order = subset[rng.permutation(n)]
        res = eng.train_epoch(x, y, batch, lr, order)
        for (name, c), v in from_engine_stats(eng, epairs, res.channel_stats).items():
            sums[name][c] += v
        steps += int(res.steps)
        loss = float(res.loss)
    energy = {k: v / max(steps, 1) for k, v in sums.items()}
    return RankingRun(specs, energy, steps, n * epochs, loss)


# ------------------------------------------------------------------- metrics
LayerMetric = Callable[[RankingRun], dict[str, float]]
LAYER_METRICS: dict[str, LayerMetric] = {}


def register_metric(name: str):
    def deco(fn: LayerMetric) -> LayerMetric:
        LAYER_METRICS[name] = fn
        return fn
    return deco


@register_metric("rgn")
def rgn(run: RankingRun) -> dict[str, float]:
    return {s.name: float(np.sum(run.energy[s.name] / s.cost)) for s in run.specs}


@register_metric("rgn_norm")
def rgn_norm(run: RankingRun) -> dict[str, float]:
    return {s.name: float(np.sum(np.sqrt(run.energy[s.name]) / s.cost)) for s in run.specs}


@register_metric("lara")
def lara(run: RankingRun) -> dict[str, float]:
    return {s.name: float(np.sum(run.energy[s.name]) / (4.0 * s.total_cost))
            for s in run.specs}


def layer_scores(run: RankingRun, metric: str) -> dict[str, float]:
    if metric not in LAYER_METRICS:
        raise ValueError(f"unknown layer metric {metric!r}; "
                         f"known: {', '.join(sorted(LAYER_METRICS))}")
    if metric not in run.scores:
        run.scores[metric] = LAYER_METRICS[metric](run)
    return run.scores[metric]


def rank_layers(scores: Mapping[str, float]) -> list[str]:
    """Layer names, best first (ties: the model's order)."""
    names = list(scores)
    return sorted(names, key=lambda n: (-scores[n], names.index(n)))


def preselect(scores: Mapping[str, float], coverage: float = 0.97, *,
              specs: Sequence[LayerSpec] | None = None, budget: int | None = None,
              max_layers: int | None = None) -> list[str]:
    """Top-K layers (best first): the fewest whose scores sum to at least
    `coverage` of the total; then, with specs and budget, more layers by rank
    until their channels can fill the budget; at most max_layers."""
    if not 0.0 < coverage <= 1.0:
        raise ValueError("coverage must be in (0, 1]")
    ranked = rank_layers(scores)
    vals = np.array([max(scores[n], 0.0) for n in ranked])
    total = vals.sum()
    if total <= 0:
        k = len(ranked)
    else:
        # the small tolerance keeps coverage=1.0 from depending on rounding
        k = int(np.searchsorted(np.cumsum(vals), coverage * total * (1 - 1e-12)) + 1)
        k = min(k, len(ranked))
    if specs is not None and budget is not None:
        cost = {s.name: s.total_cost for s in specs}
        while k < len(ranked) and sum(cost[n] for n in ranked[:k]) < budget:
            k += 1
    if max_layers is not None:
        k = min(k, max_layers)
    return ranked[:max(k, 1)]


# ------------------------------------------------------- learning-rate range test
@dataclass
class LrRangeTest:
    """A learning-rate range test (L. Smith's LR finder) on the ranking subset:
    full backprop from the pre-trained weights, one SGD step per learning rate
    of a geometric sweep, the loss of a fixed held-out probe after each step."""
    lrs: list[float]
    losses: list[float]               # probe loss after the step at lrs[i]
    loss0: float                      # probe loss of the pre-trained weights
    lr_min_loss: float                # the sweep's lr at the lowest probe loss
    lr: float                         # the suggested base learning rate
    over: str = "network"             # what trained: every layer, or "trained subnetwork"

    def as_dict(self) -> dict:
        return {"lr_min_loss": self.lr_min_loss, "lr": self.lr, "loss0": self.loss0,
                "lrs": self.lrs, "losses": self.losses, "over": self.over}


#: the suggested lr is this far below the one at the lowest probe loss: half a
#: decade. The sweep is full backprop with one step per lr, so its minimum sits
#: just before the loss blows up; a session repeats steps at its peak lr for
#: many epochs and must stay clear of that edge (docs/ALGORITHM.md, measured).
LR_RANGE_DIVISOR = math.sqrt(10.0)


def lr_range_test(factory: EngineFactory, x: np.ndarray, y: np.ndarray, *,
                  samples: int = 256, probe: int = 64, batch: int = 8, steps: int = 32,
                  lr_lo: float = 1e-4, lr_hi: float = 1.0, seed: int = 0,
                  divisor: float = LR_RANGE_DIVISOR,
                  selection: Sequence[Pair] | None = None,
                  train_bias: bool = True) -> LrRangeTest:
    """Sweep lr geometrically from lr_lo to lr_hi over `steps` SGD steps of
    `batch` samples, the steps' samples cycling through the ranking subset
    minus a held-out probe of `probe` samples; after each step the probe's loss.
    The sweep stops at a non-finite loss or one above 4x the best so far.
    Suggests lr_min_loss / divisor. What trains: every channel and bias of
    every layer, or the (layer, channel) pairs of `selection` (with their
    layers' biases if `train_bias`)."""
    specs = list(factory.layers)
    if selection is None:
        pairs, bias = all_pairs(specs), True
        budget = sum(s.total_cost for s in specs)
    else:
        pairs, bias = sorted(selection), train_bias
        used = {n for n, _ in pairs}
        specs = [s for s in specs if s.name in used]
        cost = {s.name: s.cost for s in specs}
        budget = sum(cost[n] for n, _ in pairs)
    eng = factory([s.name for s in specs], budget, bias)
    eng.set_selection(to_engine_pairs(eng, pairs))
    n = min(int(samples), len(x))
    rng = np.random.default_rng([seed, 0x4c527254])
    subset = rng.choice(len(x), size=n, replace=False)
    probe = min(probe, n // 2)
    held, train = subset[:probe], subset[probe:]
    loss0 = float(eng.evaluate(x[held], y[held])[0])
    if not math.isfinite(loss0):
        raise MedyateError(f"the model's loss is {loss0} before any training: its weights or "
                           "the data hold NaN/inf")
    lrs, losses = [], []
    for k in range(steps):
        lr = lr_lo * (lr_hi / lr_lo) ** (k / max(1, steps - 1))
        order = train[(np.arange(batch) + k * batch) % len(train)]
        eng.train_epoch(x, y, batch, lr, order)
        loss = float(eng.evaluate(x[held], y[held])[0])
        if not math.isfinite(loss):
            break
        lrs.append(float(lr))
        losses.append(loss)
        if loss > 4.0 * min(losses + [loss0]):
            break
    if not losses or min(losses) >= loss0:
        # no step lowered the probe loss: the smallest lr of the sweep
        best = lr_lo
    else:
        best = lrs[int(np.argmin(losses))]
    return LrRangeTest(lrs, losses, loss0, best, max(lr_lo, best / divisor),
                       "network" if selection is None else "trained subnetwork")
