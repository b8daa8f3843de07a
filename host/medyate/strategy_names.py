"""The training strategies by name: the one list that algo.strategies
implements, plan.json accepts, `medyate plan --strategy` offers, the
benchmark compares and docs/ALGORITHM.md describes. A leaf module (it
imports nothing), so that the plan file's checks need not import the
algorithm."""
from __future__ import annotations

STRATEGIES = {
    "full": "all channels and biases of all layers (ignores the budget; the accuracy "
            "upper bound)",
    "last": "all channels and the bias of the last trainable layer only",
    "bias": "biases of all layers, no weights (TinyTL-style)",
    "su": "static sparse update (MCUNetV3-style): the largest-magnitude channels of the "
          "last layers, fixed",
    "static-random": "channels drawn uniformly once in the top-K layers by rgn, fixed",
    "trady": "TraDy: top-K layers by rgn, channels redrawn uniformly each epoch",
    "medyate": "MeDyate: top-K layers by lara, channels redrawn each epoch by "
               "importance-weighted sampling",
    "fixed": "the plan's own hand-written selection, every epoch",
}
# Strategies that run over a plan's pre-selected layers (the firmware is built
# for exactly those): what plan.json's "strategy" may be.
PLAN_STRATEGIES = ("medyate", "trady", "static-random", "fixed")
# What `medyate plan --strategy` offers ("fixed" needs a hand-written selection).
PLANNED_STRATEGIES = ("medyate", "trady", "static-random")
# The benchmark's comparison, in its tables' order ("fixed" is not a method).
BENCHMARK_STRATEGIES = ("full", "last", "bias", "su", "static-random", "trady", "medyate")
