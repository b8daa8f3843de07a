import math

import pytest

from medyate.algo.budget import parse_size, resolve_budget, solve_budget
from medyate.algo.schedule import cosine_schedule, lr_at
from medyate.errors import MedyateError


@pytest.mark.parametrize("text,n", [("256KiB", 262144), ("300kB", 300000),
                                    ("1MiB", 1048576), ("262144", 262144),
                                    ("64 kib", 65536), ("1.5MiB", 1572864), (1000, 1000)])
def test_parse_size(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["", "12 parsecs", "-5", "1.5", "KiB"])
def test_parse_size_rejects(bad):
    with pytest.raises(MedyateError):
        parse_size(bad)


def _mem(b):
    # fixed part + pool + a step every 1000 elements (e.g. stats arrays growing)
    return 100_000 + 4 * b + 64 * (b // 1000)


@pytest.mark.parametrize("ram", [100_004 + 0, 150_000, 200_000, 262_144, 400_000])
def test_solver_finds_exact_largest(ram):
    calls = []

    def mem(b):
        calls.append(b)
        return _mem(b)
    b = solve_budget(ram, mem, 1, 1_000_000)
    assert _mem(b) <= ram
    assert b == 1_000_000 or _mem(b + 1) > ram
    brute = max(x for x in range(1, 80_000) if _mem(x) <= ram) if ram < 400_000 else None
    if brute is not None:
        assert b == brute
    assert len(calls) < 40


def test_solver_whole_range_fits():
    assert solve_budget("1MiB", _mem, 1, 5000) == 5000


def test_solver_infeasible_names_smallest_ram():
    with pytest.raises(MedyateError) as e:
        solve_budget("64KiB", _mem, 21, 10**6)
    assert str(_mem(21)) in str(e.value)
    assert "smallest feasible" in str(e.value)


def test_resolve_budget_elements_or_ram():
    assert resolve_budget(elements=27946) == 27946
    assert resolve_budget(ram="200000", memory_fn=_mem, min_budget=1,
                          max_budget=10**6) == solve_budget(200000, _mem, 1, 10**6)
    with pytest.raises(MedyateError):
        resolve_budget()
    with pytest.raises(MedyateError):
        resolve_budget(ram="1MiB", elements=5)


def test_schedule_warmup_cosine():
    lrs = cosine_schedule(20, 0.1, warmup=5)
    assert lrs[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert lrs[5] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))
    assert 0 < lrs[-1] < 0.01
    assert lrs[12] == pytest.approx(0.05 * (1 + math.cos(math.pi * 7 / 15)))
    # per-epoch: the same value whoever asks
    assert lr_at(7, 20, 0.1) == lrs[7]


def test_schedule_short_runs():
    assert cosine_schedule(1, 0.1) == [0.1]
    lrs = cosine_schedule(4, 0.1)      # warm-up shrinks to 2 epochs
    assert lrs[0] == pytest.approx(0.05) and lrs[1] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        lr_at(4, 4, 0.1)
