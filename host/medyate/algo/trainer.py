"""The interface the algorithm trains through, and the layer description it plans with.

Any engine with this interface works: the host build of the C engine
(`medyate.engine.host.HostEngine`), a device session, or a numpy stand-in in tests.

    eng.layers                 LayerSpec (planner.program): name, channels, slice_size,
                               map_size, map_words
    eng.set_selection(pairs)   sorted (layer_index, channel) pairs, within the budget
    eng.train_epoch(x, y, batch, lr, order) -> EpochResult(loss, accuracy, steps,
                               channel_stats)   # per selected pair: sum over the
                               # epoch's SGD steps of ||dL/dW[:, c]||^2
    eng.evaluate(x, y) -> (loss, accuracy)
    eng.weights() -> {name: (weight, bias)}
    eng.memory() -> {..., "total": bytes}

An *engine factory* builds engines for one model:

    factory.layers -> list[LayerSpec]   every trainable layer of the model, in
                                        topological order
    factory(trainable, budget_elements, train_bias[, bias_only]) -> engine
        trainable: layer names whose channels (and, with train_bias, biases) may
        train; budget_elements: the channel pool, paper-style elements;
        bias_only (passed only when not empty): layers of trainable whose
        weights stay frozen and whose bias trains (planner.program.lower).

Every call builds an engine from the same pre-trained weights, so strategies
compared in one harness all start from the same point.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from ..planner.program import LayerSpec

# A selection as the algorithm keeps it: (layer name, input channel). Engines
# number layers by their own order; `to_engine_pairs` translates.
Pair = tuple[str, int]


class Trainer(Protocol):
    layers: Sequence[Any]

    def set_selection(self, pairs: list[tuple[int, int]]) -> None: ...
    def train_epoch(self, x, y, batch: int, lr: float, order) -> Any: ...
    def evaluate(self, x, y) -> tuple[float, float]: ...
    def weights(self) -> dict: ...
    def memory(self) -> dict: ...


class EngineFactory(Protocol):
    layers: list[LayerSpec]

    def __call__(self, trainable: Sequence[str], budget_elements: int,
                 train_bias: bool, bias_only: Sequence[str] = ()) -> Trainer: ...


def layer_specs(engine: Trainer) -> list[LayerSpec]:
    return [LayerSpec(l.name, int(l.channels), int(l.slice_size), int(l.map_size),
                      int(getattr(l, "map_words", l.map_size)))
            for l in engine.layers]


def selection_cost(pairs: Sequence[Pair], specs: dict[str, LayerSpec]) -> int:
    return int(sum(specs[name].cost for name, _ in pairs))


def to_engine_pairs(engine: Trainer, pairs: Sequence[Pair]) -> list[tuple[int, int]]:
    index = {l.name: i for i, l in enumerate(engine.layers)}
    return sorted((index[name], int(c)) for name, c in pairs)


def from_engine_stats(engine: Trainer, engine_pairs: Sequence[tuple[int, int]],
                      stats: np.ndarray) -> dict[Pair, float]:
    """Per (name, channel) stat, from the engine's per-pair array (same order as
    the pairs handed to set_selection)."""
    names = [l.name for l in engine.layers]
    stats = np.asarray(stats, dtype=np.float64).ravel()
    if len(stats) != len(engine_pairs):
        raise ValueError(f"engine reported {len(stats)} channel stats for "
                         f"{len(engine_pairs)} selected channels")
    return {(names[i], c): float(s) for (i, c), s in zip(engine_pairs, stats)}


def all_pairs(specs: Sequence[LayerSpec]) -> list[Pair]:
    return [(s.name, c) for s in specs for c in range(s.channels)]


class HostEngineFactory:
    """Builds `medyate.engine.host.HostEngine`s for one graph, each on a fresh copy
    of the pre-trained weights."""

    def __init__(self, graph, **engine_kwargs):
        from ..ir.cost import channel_cost, input_channels
        self.graph = graph
        self.engine_kwargs = engine_kwargs
        self.layers = []
        # int8 maps are codes: a quarter of a pool word each (planner.program.Layer)
        map_bytes = 1 if engine_kwargs.get("precision", "fp32") == "int8" else 4
        for node in graph.trainable_nodes():
            s, m = channel_cost(graph, node)
            self.layers.append(LayerSpec(node.name, int(input_channels(graph, node)),
                                         int(s), int(m), -(-int(m) * map_bytes // 4)))

    def __call__(self, trainable, budget_elements, train_bias, bias_only=()):
        from ..engine.host import HostEngine
        return HostEngine(self.graph.copy(), trainable=list(trainable),
                          budget_elements=int(budget_elements),
                          train_bias=bool(train_bias), bias_only=list(bias_only),
                          **self.engine_kwargs)
