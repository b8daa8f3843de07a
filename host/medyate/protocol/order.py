"""The sample order of an epoch, bit-identical to the device's (mdy_order.c).

A Fisher–Yates shuffle driven by xorshift32 (Marsaglia, shifts 13/17/5). The
host simulation visits samples in the same order as the device, so both see
the same mini-batches (and, the arithmetic being the same, the same losses bit
for bit).

Seed 0 means no shuffle (xorshift32 has 0 as a fixed point, so it cannot seed it).
"""
from __future__ import annotations

from . import spec

_M = 0xFFFFFFFF


def xorshift32(state: int) -> int:
    """The next state (also the output) of the generator."""
    x = state & _M
    x ^= (x << 13) & _M
    x ^= x >> 17
    x ^= (x << 5) & _M
    return x


def _below(state: int, bound: int) -> tuple[int, int]:
    """A draw in [0, bound) by rejection: unbiased, and the same number of draws
    on both sides because both reject the same values."""
    limit = (0x100000000 // bound) * bound
    while True:
        state = xorshift32(state)
        if state < limit:
            return state, state % bound


def epoch_order(n: int, seed: int) -> list[int]:
    """Order in which RUN_EPOCH with `count` n and `seed` visits samples
    (indices relative to `start`)."""
    perm = list(range(n))
    if seed & _M == 0 or n < 2:
        return perm
    state = seed & _M
    for i in range(n - 1, 0, -1):
        state, j = _below(state, i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def epoch_parts(count: int, batch: int, max_part: int = spec.MAX_EPOCH_SAMPLES) -> list[tuple[int, int]]:
    """How Device.run_epoch splits an epoch larger than one RUN_EPOCH can hold:
    (offset, length) parts, each a whole number of batches except the last, so
    mini-batches are the same as in one long epoch without a partial batch."""
    if count <= max_part:
        return [(0, count)]
    step = max(batch, (max_part // batch) * batch) if batch <= max_part else max_part
    return [(o, min(step, count - o)) for o in range(0, count, step)]


def part_seed(seed: int, k: int) -> int:
    """Seed of part k of a split epoch (0 stays 0: no shuffle)."""
    if seed & _M == 0:
        return 0
    s = (seed + 0x9E3779B9 * k) & _M
    return s or 1


def visit_order(start: int, count: int, seed: int, batch: int,
                max_part: int = spec.MAX_EPOCH_SAMPLES) -> list[int]:
    """Absolute sample indices of a whole epoch as Device.run_epoch runs it."""
    out: list[int] = []
    for k, (off, n) in enumerate(epoch_parts(count, batch, max_part)):
        out += [start + off + i for i in epoch_order(n, part_seed(seed, k))]
    return out


def batch_sizes(count: int, batch: int) -> list[int]:
    """Sizes of the mini-batches of one RUN_EPOCH part: full batches, then the
    remainder (each sample's gradient is scaled by 1/its batch's size)."""
    full, rest = divmod(count, batch)
    return [batch] * full + ([rest] if rest else [])


class SeededOrder(list):
    """An epoch's visiting order together with what produces it on a device
    (RUN_EPOCH's seed and batch), so a host simulation and a device run the
    very same epoch from one value."""

    def __init__(self, count: int, seed: int, batch: int, start: int = 0):
        super().__init__(visit_order(start, count, seed, batch))
        self.seed, self.batch, self.start = seed & _M, batch, start


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of epoch `epoch` of a run seeded with `seed` (never 0,
    which would mean no shuffle)."""
    s = (xorshift32((seed * 0x9E3779B1 + epoch * 0x85EBCA6B + 0x2545F491) & _M) & _M)
    return s or 1
