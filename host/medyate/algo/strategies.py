"""Every training strategy in one harness.

`run_strategy` gives all strategies the same epochs, learning-rate schedule
(SGD without momentum, per-epoch cosine with linear warm-up), data order (one
seeded permutation per epoch, the same for every strategy), seeds, and channel
budget. A strategy decides what the engine may train (`prepare`) and, each
epoch, which channels (`select`), having seen the statistics of the previous
epoch (`observe`): exactly the loop a device session runs.

Strategies (`STRATEGIES`, by the names of medyate.strategy_names):
  full        all channels and biases of all layers (ignores the budget; the
              accuracy upper bound).
  last        all channels and the bias of the last trainable layer only.
  bias        biases of all layers, no weights (TinyTL-style).
  su          static sparse update in the style of MCUNetV3: biases of the last
              `n_bias_layers` layers plus, in the last `n_weight_layers`
              layers, the input channels with the largest weight magnitude
              ||W[:, c]||, the budget split evenly over those layers (what one
              layer cannot use passes to the next); fixed for the whole run.
  static-random  channels drawn uniformly once, in the top-K layers of the
              `rgn` ranking, filling the budget; fixed.
  trady       TraDy: top-K layers by `rgn` (97% coverage), channels redrawn
              uniformly each epoch until the budget is full.
  medyate     MeDyate as implemented here: top-K layers by `lara`, channels
              redrawn each epoch by importance-weighted sampling without
              replacement (temperature T), importance refreshed from the trained
              channels' statistics.
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import MedyateError
from .importance import ChannelImportance
from .ranking import RankingRun, layer_scores, preselect, ranking_run
from .sampling import sample_selection
from .schedule import lr_at
from .trainer import (EngineFactory, LayerSpec, Pair, all_pairs, from_engine_stats,
                      selection_cost, to_engine_pairs)


@dataclass
class EngineSpec:
    trainable: list[str]
    budget_elements: int
    train_bias: bool
    # trainable layers whose weights stay frozen: only their bias trains, they
    # have no selectable channels, and on a device their weights stay in flash
    # (planner.program.lower); a strategy never selects channels of them
    bias_only: list[str] = field(default_factory=list)


@dataclass
class RunContext:
    factory: EngineFactory
    task: Any
    budget: int
    seed: int
    batch: int
    lr: float
    epochs: int
    warmup: int = 5
    ranking_samples: int = 256
    ranking: RankingRun | None = None
    engine: Any = None
    specs: dict[str, LayerSpec] = field(default_factory=dict)

    def __post_init__(self):
        self.specs = {s.name: s for s in self.factory.layers}

    @property
    def layer_names(self) -> list[str]:
        return [s.name for s in self.factory.layers]

    def get_ranking(self) -> RankingRun:
        """The ranking run, computed once (shared by strategies if passed in)."""
        if self.ranking is None:
            self.ranking = ranking_run(
                self.factory, self.task.x_train, self.task.y_train,
                samples=self.ranking_samples, batch=self.batch,
                lr=lr_at(0, self.epochs, self.lr, self.warmup), seed=self.seed)
        return self.ranking


class Strategy:
    name = "?"
    dynamic = False

    def prepare(self, ctx: RunContext) -> EngineSpec:
        raise NotImplementedError

    def select(self, epoch: int, ctx: RunContext, rng: np.random.Generator) -> list[Pair]:
        raise NotImplementedError

    def observe(self, epoch: int, stats: dict[Pair, float], steps: int) -> None:
        pass

    # What the strategy learnt during the run (beyond what `prepare` rebuilds
    # from the plan), as plain arrays: a checkpoint stores data, not objects.
    def state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore `state_arrays()`; ValueError naming the array if it does not
        fit the strategy as prepared."""
        _expect_keys(arrays, set())


def _expect_keys(arrays, keys) -> None:
    extra = sorted(set(arrays) - set(keys))
    missing = sorted(set(keys) - set(arrays))
    if extra:
        raise ValueError(f"unexpected array(s) {', '.join(extra)}")
    if missing:
        raise ValueError(f"missing array(s) {', '.join(missing)}")


def _pairs_to_array(pairs, names) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.array([(index[n], c) for n, c in pairs], dtype=np.int64).reshape(-1, 2)


def _pairs_from_array(a, key, names, specs) -> list:
    a = np.asarray(a)
    if a.dtype.kind not in "iu" or a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{key}: expected an integer array of [layer, channel] rows, "
                         f"got {a.dtype} {a.shape}")
    out = []
    for k, (li, c) in enumerate(a.tolist()):
        if not 0 <= li < len(names):
            raise ValueError(f"{key}[{k}]: layer index {li} out of range ({len(names)} layers)")
        if not 0 <= c < specs[names[li]].channels:
            raise ValueError(f"{key}[{k}]: channel {c} out of range for {names[li]} "
                             f"({specs[names[li]].channels} channels)")
        out.append((names[li], int(c)))
    return out


class FullFineTuning(Strategy):
    name = "full"

    def prepare(self, ctx):
        self.layers = ctx.layer_names
        return EngineSpec(self.layers, sum(ctx.specs[n].total_cost for n in self.layers), True)

    def select(self, epoch, ctx, rng):
        return all_pairs([ctx.specs[n] for n in self.layers])


class LastLayer(Strategy):
    name = "last"

    def prepare(self, ctx):
        self.layers = ctx.layer_names[-1:]
        return EngineSpec(self.layers, ctx.specs[self.layers[0]].total_cost, True)

    def select(self, epoch, ctx, rng):
        return all_pairs([ctx.specs[n] for n in self.layers])


class BiasOnly(Strategy):
    name = "bias"

    def __init__(self, always: Sequence[str] = ()):
        """always: layers whose weights train too (TinyTL's bias-only keeps the
        classifier trainable; a new head must be)."""
        self.always = list(always)

    def prepare(self, ctx):
        self.layers = list(ctx.layer_names)
        self.bias_only = [n for n in self.layers if n not in self.always]
        return EngineSpec(self.layers, sum(ctx.specs[n].total_cost for n in self.always),
                          True, bias_only=self.bias_only)

    def select(self, epoch, ctx, rng):
        return all_pairs([ctx.specs[n] for n in self.always])


def channel_magnitudes(weight: np.ndarray, channels: int) -> np.ndarray:
    """||W[:, c]||_2 per input channel c, for ONNX layouts: Gemm [O, I] and Conv
    [O, I/g, kh, kw] (any group count, depthwise included)."""
    w = np.asarray(weight, dtype=np.float64)
    w = w.reshape(w.shape[0], w.shape[1], -1)
    per_group = w.shape[1]
    groups = channels // per_group
    o_per = w.shape[0] // groups
    out = np.empty(channels)
    for c in range(channels):
        g = c // per_group
        out[c] = np.linalg.norm(w[g * o_per:(g + 1) * o_per, c % per_group])
    return out


class StaticSparseUpdate(Strategy):
    name = "su"

    def __init__(self, n_weight_layers: int = 4, n_bias_layers: int | None = None,
                 scheme=None, always: Sequence[str] = ()):
        """scheme: a published scheme (`su_schemes.SUScheme`: biases of the last
        convolutions, weights of given ones for a ratio of their input channels)
        instead of the budget-filling rule; always: layers trained in full (a new
        head), outside the scheme's count of convolutions."""
        self.n_weight_layers = n_weight_layers
        self.n_bias_layers = n_bias_layers
        self.scheme = scheme
        self.always = list(always)
        self.fixed: list[Pair] | None = None

    def _prepare_scheme(self, ctx):
        from .su_schemes import scheme_layers
        convs = [n for n in ctx.layer_names if n not in self.always]
        bias, self.ratios = scheme_layers(self.scheme, convs)
        self.weight_layers = list(self.ratios)
        self.specs = ctx.specs
        self.fixed = None
        trainable = sorted(set(bias) | set(self.ratios) | set(self.always),
                           key=ctx.layer_names.index)
        cost = sum(self._scheme_count(n) * ctx.specs[n].cost for n in self.ratios)
        cost += sum(ctx.specs[n].total_cost for n in self.always)
        self.layers = trainable
        # the scheme's bias layers, and weight layers it keeps no channel of
        self.bias_only = [n for n in trainable if n not in self.always and
                          (n not in self.ratios or self._scheme_count(n) == 0)]
        return EngineSpec(trainable, cost, True, bias_only=self.bias_only)

    def _scheme_count(self, name) -> int:
        # TTE keeps round(ratio * C_in) channels (half away from zero)
        return min(self.specs[name].channels,
                   int(math.floor(self.ratios[name] * self.specs[name].channels + 0.5)))

    def _select_scheme(self, ctx):
        w = ctx.engine.weights()
        chosen = all_pairs([ctx.specs[n] for n in self.always])
        for name in self.weight_layers:
            mags = channel_magnitudes(w[name][0], ctx.specs[name].channels)
            top = np.argsort(-mags, kind="stable")[:self._scheme_count(name)]
            chosen += [(name, int(c)) for c in top]
        return sorted(chosen)

    def prepare(self, ctx):
        if self.scheme is not None:
            return self._prepare_scheme(ctx)
        names = ctx.layer_names
        nw = min(self.n_weight_layers, len(names))
        nb = self.n_bias_layers
        if nb is None:   # MCUNetV3 trains biases deeper than weights
            nb = max(nw, math.ceil(len(names) / 3))
        nb = max(min(nb, len(names)), nw)
        self.weight_layers = names[len(names) - nw:]
        self.specs = ctx.specs
        self.fixed = None
        self.layers = names[len(names) - nb:]
        self.bias_only = names[len(names) - nb:len(names) - nw]
        # the bias layers deeper than the weight layers train their bias alone
        return EngineSpec(self.layers, ctx.budget, True,
                          bias_only=self.bias_only)

    def select(self, epoch, ctx, rng):
        if self.fixed is None and self.scheme is not None:
            self.fixed = self._select_scheme(ctx)
        if self.fixed is None:
            w = ctx.engine.weights()
            left = ctx.budget
            chosen: list[Pair] = []
            pending = list(reversed(self.weight_layers))  # last layer first
            ranked = {}
            for i, name in enumerate(pending):
                spec = ctx.specs[name]
                mags = channel_magnitudes(w[name][0], spec.channels)
                ranked[name] = list(np.argsort(-mags, kind="stable"))
                share = left // (len(pending) - i)
                k = min(spec.channels, share // spec.cost)
                chosen += [(name, int(c)) for c in ranked[name][:k]]
                ranked[name] = ranked[name][k:]
                left -= k * spec.cost
            for name in pending:          # what is left, by the same order
                spec = ctx.specs[name]
                while ranked[name] and spec.cost <= left:
                    chosen.append((name, int(ranked[name].pop(0))))
                    left -= spec.cost
            self.fixed = sorted(chosen)
        return self.fixed

    def state_arrays(self):
        return {} if self.fixed is None else {"fixed": _pairs_to_array(self.fixed, self.weight_layers)}

    def load_state_arrays(self, arrays):
        if not arrays:
            self.fixed = None
            return
        _expect_keys(arrays, {"fixed"})
        self.fixed = _pairs_from_array(arrays["fixed"], "fixed", self.weight_layers, self.specs)


class _TopK(Strategy):
    """Shared by random, TraDy and MeDyate: pre-select layers from the ranking run."""
    metric = "rgn"

    def __init__(self, metric: str | None = None, coverage: float = 0.97,
                 max_layers: int | None = None, layers: Sequence[str] | None = None,
                 train_bias: bool = False, always: Sequence[str] = (),
                 bias_only: Sequence[str] = ()):
        """layers: a fixed pre-selection (e.g. from a plan) instead of ranking.
        always: layers trained in full every epoch, outside the ranking and the
        sampling (a new head: a randomly initialised classifier that is only
        partly trained leaves every strategy near chance); their cost comes off
        the budget first. bias_only: layers of `layers` that train only their
        bias (EngineSpec.bias_only): never sampled."""
        if metric is not None:
            self.metric = metric
        self.coverage = coverage
        self.max_layers = max_layers
        self.fixed_layers = list(layers) if layers is not None else None
        self.train_bias = train_bias
        self.always = list(always)
        self.bias_only = list(bias_only)

    def prepare(self, ctx):
        always_cost = sum(ctx.specs[n].total_cost for n in self.always)
        if always_cost > ctx.budget:
            raise MedyateError(f"the budget ({ctx.budget} elements) does not hold the "
                               f"layers trained in full ({', '.join(self.always)}: "
                               f"{always_cost} elements)")
        self.sample_budget = ctx.budget - always_cost
        if self.fixed_layers is not None:
            layers = [n for n in self.fixed_layers if n not in self.always]
        else:
            scores = layer_scores(ctx.get_ranking(), self.metric)
            self.scores = {n: v for n, v in scores.items() if n not in self.always}
            layers = preselect(self.scores, self.coverage,
                               specs=[s for n, s in ctx.specs.items() if n in self.scores],
                               budget=self.sample_budget, max_layers=self.max_layers)
        order = ctx.layer_names
        self.specs = ctx.specs
        self.layers = sorted(set(layers) | set(self.always), key=order.index)
        self.candidates = all_pairs([ctx.specs[n] for n in self.layers
                                     if n not in self.always and n not in self.bias_only])
        self.fixed_pairs = all_pairs([ctx.specs[n] for n in self.always])
        return EngineSpec(self.layers, ctx.budget, self.train_bias,
                          bias_only=[n for n in self.layers if n in self.bias_only])

    def _sample(self, importance, temperature, rng) -> list[Pair]:
        """The always-trained layers' channels plus a sample filling the rest."""
        picked = sample_selection(self.candidates, self.specs, importance,
                                  self.sample_budget, temperature, rng)
        return sorted(self.fixed_pairs + picked)


class StaticRandom(_TopK):
    name = "static-random"

    def prepare(self, ctx):
        self.fixed = None
        return super().prepare(ctx)

    def select(self, epoch, ctx, rng):
        if self.fixed is None:
            self.fixed = self._sample(None, math.inf, rng)
        return self.fixed

    def state_arrays(self):
        return {} if self.fixed is None else {"fixed": _pairs_to_array(self.fixed, self.layers)}

    def load_state_arrays(self, arrays):
        if not arrays:
            self.fixed = None
            return
        _expect_keys(arrays, {"fixed"})
        self.fixed = _pairs_from_array(arrays["fixed"], "fixed", self.layers, self.specs)


class TraDy(_TopK):
    name = "trady"
    dynamic = True

    def select(self, epoch, ctx, rng):
        return self._sample(None, math.inf, rng)


class MeDyate(_TopK):
    name = "medyate"
    metric = "lara"
    dynamic = True

    def __init__(self, metric: str | None = None, coverage: float = 0.97,
                 max_layers: int | None = None, layers: Sequence[str] | None = None,
                 train_bias: bool = False, temperature: float = 1.0,
                 momentum: float = 0.0, importance: dict | None = None,
                 always: Sequence[str] = (), bias_only: Sequence[str] = ()):
        """importance: initial per-channel energy {layer: [E_c]} (e.g. a plan's);
        without it, the ranking run's."""
        super().__init__(metric, coverage, max_layers, layers, train_bias, always, bias_only)
        self.temperature = temperature
        self.momentum = momentum
        self.initial = importance

    def prepare(self, ctx):
        spec = super().prepare(ctx)
        energy = self.initial if self.initial is not None else ctx.get_ranking().energy
        self.importance = ChannelImportance.from_energy(
            [ctx.specs[n] for n in self.layers], energy, self.momentum)
        return spec

    def select(self, epoch, ctx, rng):
        imp = self.importance.importances(self.candidates)
        return self._sample(imp, self.temperature, rng)

    def observe(self, epoch, stats, steps):
        self.importance.update(stats, steps, epoch)

    def state_arrays(self):
        out = {}
        for i, n in enumerate(self.layers):
            out[f"energy_{i}"] = self.importance.energy[n].copy()
            out[f"last_update_{i}"] = self.importance.last_update[n].copy()
        return out

    def load_state_arrays(self, arrays):
        _expect_keys(arrays, {f"{k}_{i}" for i in range(len(self.layers))
                              for k in ("energy", "last_update")})
        for i, n in enumerate(self.layers):
            ch = self.specs[n].channels
            e, u = np.asarray(arrays[f"energy_{i}"]), np.asarray(arrays[f"last_update_{i}"])
            if e.dtype.kind != "f" or e.shape != (ch,):
                raise ValueError(f"energy_{i}: expected {ch} floats for {n}, got {e.dtype} {e.shape}")
            if np.isinf(e).any() or (e < 0).any():
                raise ValueError(f"energy_{i}: energies of {n} must be >= 0 (NaN: never measured)")
            if u.dtype.kind not in "iu" or u.shape != (ch,):
                raise ValueError(f"last_update_{i}: expected {ch} integers for {n}, "
                                 f"got {u.dtype} {u.shape}")
            self.importance.energy[n][:] = e
            self.importance.last_update[n][:] = u


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "full": FullFineTuning, "last": LastLayer, "bias": BiasOnly,
    "su": StaticSparseUpdate, "static-random": StaticRandom, "trady": TraDy,
    "medyate": MeDyate,
}


def make_strategy(name: str, **kwargs) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](**kwargs)


def data_order(n: int, seed: int, epoch: int, batch: int = 1):
    """The visiting order of epoch `epoch`: the same for every strategy, and the
    same on a device (RUN_EPOCH regenerates it from the seed it carries)."""
    from ..protocol.order import SeededOrder, epoch_seed
    return SeededOrder(n, epoch_seed(seed, epoch), batch)


#: a diverged epoch is redone at most EPOCH_RETRIES times, each time with the
#: learning rate (of it and every later epoch) multiplied by EPOCH_BACKOFF
EPOCH_RETRIES = 3
EPOCH_BACKOFF = 0.25


class Diverged(MedyateError):
    """An epoch stayed non-finite at every learning rate tried. The run is
    back at the last good epoch's weights and state when this is raised."""


def epoch_nonfinite(res, test_loss: float, weights: dict) -> str | None:
    """What is not finite after an epoch: the engine's own count of non-finite
    values (engines that report one), the training loss, the channel
    statistics, the test loss, the trained weights. None if all is finite. A
    NaN loss is non-finite whatever the count says."""
    bad = []
    count = int(getattr(res, "nonfinite", 0) or 0)
    if count:
        bad.append(f"{count} non-finite values reported by the engine")
    if not math.isfinite(float(res.loss)):
        bad.append(f"training loss {float(res.loss)}")
    stats = np.asarray(res.channel_stats, dtype=np.float64)
    if not np.all(np.isfinite(stats)):
        bad.append(f"{int(np.sum(~np.isfinite(stats)))} of {stats.size} channel statistics")
    if not math.isfinite(float(test_loss)):
        bad.append(f"test loss {float(test_loss)}")
    layers = [n for n, wb in weights.items() if not all(np.all(np.isfinite(a)) for a in wb)]
    if layers:
        bad.append(f"weights of {len(layers)} layers (first {layers[0]})")
    return "; ".join(bad) or None


class Run:
    """One strategy's fine-tuning, an epoch per `step()`. Everything that
    decides the next epoch (weights, strategy state, sampling RNG, history,
    learning-rate scale) is in `state()`, so a session can checkpoint after
    each epoch and resume with `restore()` losing at most the epoch in progress.

    An epoch that diverges (anything non-finite: `epoch_nonfinite`) is undone:
    the weights, strategy state and sampling RNG go back to where the epoch
    started, the learning rate of this and every later epoch is multiplied by
    `backoff`, and the epoch is redone, said through `log`. After `retries`
    redos of one epoch, `Diverged` is raised with the run at its last good
    epoch. Nothing non-finite ever reaches `history` or `state()`."""

    def __init__(self, engine_factory: EngineFactory, task, strategy: Strategy | str,
                 epochs: int, batch: int, lr: float, seed: int, budget: int, *,
                 warmup: int = 5, ranking: RankingRun | None = None,
                 ranking_samples: int = 256, retries: int | None = None,
                 backoff: float | None = None, log: Callable[[str], None] | None = None):
        self.strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
        self.task, self.epochs, self.batch, self.lr, self.seed = task, epochs, batch, lr, seed
        self.warmup = warmup
        self.retries = EPOCH_RETRIES if retries is None else int(retries)
        self.backoff = EPOCH_BACKOFF if backoff is None else float(backoff)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.lr_scale = 1.0
        self.ctx = RunContext(engine_factory, task, int(budget), seed, batch, lr, epochs,
                              warmup, ranking_samples, ranking)
        spec = self.strategy.prepare(self.ctx)
        # only a spec with bias-only layers passes them: a factory that knows
        # none (an engine of its own) keeps its three arguments
        extra = {"bias_only": list(spec.bias_only)} if spec.bias_only else {}
        self.engine = engine_factory(spec.trainable, spec.budget_elements, spec.train_bias,
                                     **extra)
        self.ctx.engine = self.engine
        self.rng = np.random.default_rng([seed, 0x5E1EC7])
        self.epoch = 0
        self.history: list[dict] = []

    def epoch_lr(self, epoch: int) -> float:
        return lr_at(epoch, self.epochs, self.lr, self.warmup) * self.lr_scale

    def step(self, progress: Callable[[int, int], None] | None = None) -> dict:
        """Train one epoch (redone at a lower learning rate if it diverges);
        return its record."""
        good = (self.engine.weights(), copy.deepcopy(self.strategy),
                copy.deepcopy(self.rng.bit_generator.state))
        for attempt in range(self.retries + 1):
            rec, bad = self._attempt(progress)
            if bad is None:
                if attempt:
                    rec["retries"] = attempt
                self.history.append(rec)
                self.epoch += 1
                return rec
            lr = rec["lr"]
            self.engine.load_weights(good[0])
            self.strategy = copy.deepcopy(good[1])
            self.rng.bit_generator.state = copy.deepcopy(good[2])
            if attempt == self.retries:
                break
            self.lr_scale *= self.backoff
            self.log(f"epoch {self.epoch + 1} diverged at lr {lr:.4g} ({bad}): back to the "
                     f"weights before it, learning rate x{self.backoff:g} from here on, "
                     f"redoing the epoch at lr {self.epoch_lr(self.epoch):.4g}")
        raise Diverged(f"epoch {self.epoch + 1} diverged {self.retries + 1} times, last at lr "
                       f"{lr:.4g} ({bad}); the run is left at epoch {self.epoch} "
                       f"(its last good epoch). Give a smaller learning rate")

    def _attempt(self, progress) -> tuple[dict, str | None]:
        eng, task, epoch = self.engine, self.task, self.epoch
        t0 = time.perf_counter()
        pairs = self.strategy.select(epoch, self.ctx, self.rng)
        epairs = to_engine_pairs(eng, pairs)
        eng.set_selection(epairs)
        elr = self.epoch_lr(epoch)
        order = data_order(len(task.x_train), self.seed, epoch, self.batch)
        if progress is not None:
            res = eng.train_epoch(task.x_train, task.y_train, self.batch, elr, order,
                                  progress=progress)
        else:
            res = eng.train_epoch(task.x_train, task.y_train, self.batch, elr, order)
        test_loss, test_acc = eng.evaluate(task.x_test, task.y_test)
        bad = epoch_nonfinite(res, test_loss, eng.weights())
        rec = {
            # epochs count from 1 wherever they are shown or written
            "strategy": self.strategy.name, "epoch": epoch + 1, "lr": elr,
            "loss": float(res.loss), "train_acc": float(res.accuracy),
            "test_loss": float(test_loss), "test_acc": float(test_acc),
            "channels": len(pairs), "elements": selection_cost(pairs, self.ctx.specs),
            "layers": len({name for name, _ in pairs}),
            "bytes": int(eng.memory()["total"]),
            "seconds": time.perf_counter() - t0,
        }
        if bad is not None:
            return rec, bad
        # the strategy learns from an epoch only once it is known to be good
        self.strategy.observe(epoch, from_engine_stats(eng, epairs, res.channel_stats),
                              int(res.steps))
        # device engines report these; the counter under the name of what it
        # counts (instructions in QEMU, cycles on a board)
        if hasattr(res, "cycles"):
            rec[getattr(res, "counter", "cycles")] = res.cycles
        if hasattr(res, "stack_high_water"):
            rec["stack_high_water"] = res.stack_high_water
        return rec, None

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    def state(self) -> dict:
        return {"epoch": self.epoch, "history": list(self.history),
                "rng": self.rng.bit_generator.state, "strategy": self.strategy,
                "weights": self.engine.weights(), "lr_scale": self.lr_scale}

    def restore(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.history = list(state["history"])
        self.rng.bit_generator.state = state["rng"]
        self.strategy = state["strategy"]
        self.engine.load_weights(state["weights"])
        self.lr_scale = float(state.get("lr_scale", 1.0))


def run_strategy(engine_factory: EngineFactory, task, strategy: Strategy | str,
                 epochs: int, batch: int, lr: float, seed: int, budget: int, *,
                 warmup: int = 5, ranking: RankingRun | None = None,
                 ranking_samples: int = 256,
                 on_epoch: Callable[[dict], None] | None = None,
                 log: Callable[[str], None] | None = None) -> list[dict]:
    """Fine-tune with one strategy; one dict per epoch:
    epoch, lr, loss, train_acc, test_loss, test_acc, channels, elements, layers,
    bytes (engine.memory()['total']), seconds."""
    run = Run(engine_factory, task, strategy, epochs, batch, lr, seed, budget,
              warmup=warmup, ranking=ranking, ranking_samples=ranking_samples, log=log)
    while not run.done:
        rec = run.step()
        if on_epoch is not None:
            on_epoch(rec)
    return run.history
