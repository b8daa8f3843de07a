"""Per-channel importance from the gradient statistics an engine reports.

What an engine (host or device) reports after an epoch, for each channel it
trained: S_c = sum over the epoch's SGD steps of ||dL/dW[:, c]||^2, and the
number of steps. From it:

    energy     E_c = S_c / steps          mean squared gradient norm per SGD step
    importance I_c = E_c / cost(c)        gradient energy per element of budget

Why energy: one SGD step of learning rate lr on channel c lowers the loss by
lr * ||g_c||^2 to first order, so E_c is the channel's expected first-order
gain per step, and E_c / cost(c) that gain per element of channel-pool memory
(the quantity a budget-filling sampler should favour).

Refresh rule: after an epoch, channels trained in it get their fresh E_c
(optionally an exponential moving average with the old value); every other
channel keeps its last estimate, however old (channel-importance distributions
are stable over training, which is what makes the stale values useful).
Estimates start from the ranking run, where every channel was trained.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .trainer import LayerSpec, Pair


class ChannelImportance:
    def __init__(self, specs: Sequence[LayerSpec], momentum: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError("momentum must be in [0, 1)")
        self.specs = {s.name: s for s in specs}
        self.momentum = momentum
        # NaN = never measured.
        self.energy = {s.name: np.full(s.channels, np.nan) for s in specs}
        # epoch of each channel's last refresh, -1 = never (-2 = initial estimate)
        self.last_update = {s.name: np.full(s.channels, -1, dtype=np.int64) for s in specs}

    @classmethod
    def from_energy(cls, specs: Sequence[LayerSpec], energy: Mapping[str, np.ndarray],
                    momentum: float = 0.0) -> "ChannelImportance":
        """Initial estimates, e.g. the ranking run's per-channel energy."""
        imp = cls(specs, momentum)
        for name in imp.specs:
            if name in energy:
                e = np.asarray(energy[name], dtype=np.float64)
                imp.energy[name][:] = e
                imp.last_update[name][:] = -2
        return imp

    def update(self, stats: Mapping[Pair, float], steps: int, epoch: int) -> None:
        """Refresh exactly the channels in `stats` (the ones trained this epoch)."""
        if steps <= 0:
            return
        for (name, c), s in stats.items():
            if name not in self.specs:
                continue
            e = float(s) / steps
            old = self.energy[name][c]
            if self.momentum > 0.0 and np.isfinite(old):
                e = self.momentum * old + (1.0 - self.momentum) * e
            self.energy[name][c] = e
            self.last_update[name][c] = epoch

    def energies(self, pairs: Sequence[Pair]) -> np.ndarray:
        """E_c of each pair; a channel never measured gets its layer's mean, or
        the mean of all measured channels when its layer has none."""
        measured = [e[np.isfinite(e)] for e in self.energy.values()]
        allm = np.concatenate(measured) if measured else np.empty(0)
        glob = float(allm.mean()) if allm.size else 1.0
        layer_mean = {}
        for name, e in self.energy.items():
            f = e[np.isfinite(e)]
            layer_mean[name] = float(f.mean()) if f.size else glob
        out = np.empty(len(pairs))
        for k, (name, c) in enumerate(pairs):
            v = self.energy[name][c]
            out[k] = v if np.isfinite(v) else layer_mean[name]
        return out

    def importances(self, pairs: Sequence[Pair]) -> np.ndarray:
        """I_c = E_c / cost(c) of each pair."""
        costs = np.array([self.specs[n].cost for n, _ in pairs], dtype=np.float64)
        return self.energies(pairs) / costs
