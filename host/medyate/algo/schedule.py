"""Learning-rate schedule: linear warm-up, then cosine decay, one value per epoch.

The device receives one learning rate per epoch, so the host uses exactly the
same per-epoch values: a run in simulation and on the board see the same lr.

    warm-up  (e < W):   lr(e) = base * (e + 1) / W
    cosine   (e >= W):  lr(e) = min_lr + (base - min_lr) * (1 + cos(pi * t)) / 2,
                        t = (e - W) / (epochs - W)

t stays below 1, so the last epoch still trains (lr > min_lr). W defaults to 5
(TraDy's setup); when a run has no more epochs than that, W becomes epochs // 2
so that at least half of the run is at or past the peak.
"""
from __future__ import annotations

import math


def effective_warmup(epochs: int, warmup: int = 5) -> int:
    if epochs <= warmup:
        return epochs // 2
    return warmup


def lr_at(epoch: int, epochs: int, base_lr: float, warmup: int = 5,
          min_lr: float = 0.0) -> float:
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch {epoch} outside 0..{epochs - 1}")
    w = effective_warmup(epochs, warmup)
    if epoch < w:
        return base_lr * (epoch + 1) / w
    t = (epoch - w) / (epochs - w)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def cosine_schedule(epochs: int, base_lr: float, warmup: int = 5,
                    min_lr: float = 0.0) -> list[float]:
    """The learning rate of every epoch."""
    return [lr_at(e, epochs, base_lr, warmup, min_lr) for e in range(epochs)]
