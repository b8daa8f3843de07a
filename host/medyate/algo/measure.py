"""How well does a layer metric predict which layers are worth training?

The oracle: for each layer alone, fine-tune only its channels (redrawn uniformly
each epoch, the same channel budget for every layer, biases frozen) and record
how much the test loss drops. A good layer metric orders layers like that gain
at equal memory. `compare_metrics` reports the Spearman rank correlation of each
metric with the oracle; this is how the default RGN variant (norm or squared
norm) was chosen (docs/ALGORITHM.md).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .ranking import LAYER_METRICS, RankingRun, layer_scores
from .sampling import sample_selection
from .strategies import EngineSpec, Strategy, run_strategy
from .trainer import EngineFactory, all_pairs


class UniformInLayers(Strategy):
    """Channels of the given layers only, redrawn uniformly each epoch; the
    `always` layers (a new head) in full besides, outside the budget."""
    name = "uniform-in"
    dynamic = True

    def __init__(self, layers: Sequence[str], always: Sequence[str] = ()):
        self.layers = [n for n in layers if n not in always]
        self.always = list(always)

    def prepare(self, ctx):
        self.candidates = all_pairs([ctx.specs[n] for n in self.layers])
        self.fixed = all_pairs([ctx.specs[n] for n in self.always])
        budget = min(ctx.budget, sum(ctx.specs[n].total_cost for n in self.layers))
        self.budget = budget
        fixed = sum(ctx.specs[n].total_cost for n in self.always)
        order = ctx.layer_names
        return EngineSpec(sorted(self.layers + self.always, key=order.index),
                          budget + fixed, False)

    def select(self, epoch, ctx, rng):
        return sorted(self.fixed + sample_selection(self.candidates, ctx.specs, None,
                                                    self.budget, math.inf, rng))


def oracle_loss(factory: EngineFactory, task, layer: str | None, budget: int, *,
                epochs: int = 3, batch: int = 32, lr: float = 0.05, seed: int = 0,
                always: Sequence[str] = ()) -> float:
    """Test loss after training `layer` alone under `budget` (with the `always`
    layers in full); layer None: the `always` layers alone, or no training."""
    if layer is None and not always:
        return float(factory([], 0, False).evaluate(task.x_test, task.y_test)[0])
    hist = run_strategy(factory, task, UniformInLayers([layer] if layer else [], always),
                        epochs, batch, lr, seed, budget, warmup=0)
    return float(hist[-1]["test_loss"])


def layer_oracle(factory: EngineFactory, task, budget: int, *, epochs: int = 3,
                 batch: int = 32, lr: float = 0.05, seed: int = 0,
                 layers: Sequence[str] | None = None,
                 always: Sequence[str] = ()) -> dict[str, float]:
    """Test-loss decrease from training each layer alone under `budget`, over
    the `always` layers trained alone (a new head must train for any layer to
    show a gain)."""
    kw = dict(epochs=epochs, batch=batch, lr=lr, seed=seed, always=always)
    base = oracle_loss(factory, task, None, budget, **kw)
    names = [s.name for s in factory.layers if (layers is None or s.name in set(layers))
             and s.name not in always]
    return {n: base - oracle_loss(factory, task, n, budget, **kw) for n in names}


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v))
    for val in np.unique(v):            # average ranks of ties
        m = v == val
        r[m] = r[m].mean()
    return r


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def compare_metrics(run: RankingRun, oracle: dict[str, float],
                    metrics: Sequence[str] | None = None) -> dict[str, float]:
    """Spearman correlation of each metric's layer scores with the oracle gains."""
    names = list(oracle)
    out = {}
    for m in metrics or sorted(LAYER_METRICS):
        s = layer_scores(run, m)
        out[m] = spearman([s[n] for n in names], [oracle[n] for n in names])
    return out
