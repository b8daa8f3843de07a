"""From a RAM budget in bytes to a channel budget in elements.

The channel budget (paper-style: sum over selected channels of slice + map
elements) sizes the channel pool; everything else the device needs for training
(the rest of the arena, trainable weights in RAM, static data, stack) depends on
the plan. The planner supplies `memory_fn(budget_elements) -> total bytes`, its
exact figure for a plan with that pool; it is non-decreasing in the budget, so the
largest budget that fits is found by binary search.
"""
from __future__ import annotations

import re
from typing import Callable

from ..errors import MedyateError

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "gb": 1000**3,
}


def parse_size(text: str | int) -> int:
    """Bytes from "256KiB", "300kB", "1MiB", "262144" (or an int).

    kB/MB are SI (1000, 10^6), KiB/MiB binary (1024, 2^20); units are
    case-insensitive, so "256KB" is 256,000 bytes: write KiB for 262,144.
    """
    if isinstance(text, int):
        if text < 0:
            raise MedyateError(f"negative size: {text}")
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise MedyateError(f"cannot read the size {text!r}: write e.g. 256KiB, "
                           "300kB, 1MiB or a number of bytes")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value != int(value):
        raise MedyateError(f"size {text!r} is not a whole number of bytes")
    return int(value)


def format_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.2f} MiB ({n} bytes)"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB ({n} bytes)"
    return f"{n} bytes"


def solve_budget(ram_bytes: int | str, memory_fn: Callable[[int], int],
                 min_budget: int, max_budget: int) -> int:
    """The largest channel budget b in [min_budget, max_budget] with
    memory_fn(b) <= ram_bytes.

    min_budget is the smallest useful budget (e.g. the cost of the cheapest
    channel), max_budget the most the plan can use (all channels of the
    pre-selected layers). If even min_budget does not fit, MedyateError names
    the smallest feasible RAM, memory_fn(min_budget).
    """
    ram = parse_size(ram_bytes)
    if min_budget < 0 or max_budget < min_budget:
        raise ValueError(f"bad budget range [{min_budget}, {max_budget}]")
    need = int(memory_fn(min_budget))
    if need > ram:
        raise MedyateError(
            f"training does not fit in {format_size(ram)}: the smallest feasible "
            f"budget (a channel budget of {min_budget} elements) needs "
            f"{format_size(need)}")
    if memory_fn(max_budget) <= ram:
        return int(max_budget)
    lo, hi = min_budget, max_budget      # memory_fn(lo) <= ram < memory_fn(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if memory_fn(mid) <= ram:
            lo = mid
        else:
            hi = mid
    return int(lo)


def resolve_budget(*, ram: int | str | None = None, elements: int | None = None,
                   memory_fn: Callable[[int], int] | None = None,
                   min_budget: int = 1, max_budget: int | None = None) -> int:
    """A channel budget from either a RAM budget (solved with memory_fn) or a
    paper-style budget in elements (taken as is)."""
    if (ram is None) == (elements is None):
        raise MedyateError("give either a RAM budget or a channel budget in elements")
    if elements is not None:
        if int(elements) < 0:
            raise MedyateError(f"negative channel budget: {elements}")
        return int(elements)
    if memory_fn is None or max_budget is None:
        raise ValueError("a RAM budget needs memory_fn and max_budget")
    return solve_budget(ram, memory_fn, min_budget, max_budget)
