"""Smoke test of the strategies benchmark: its --quick grid runs every strategy
through the host engine and writes the table, the plot and the raw records."""
import json
import math
import subprocess
import sys
from pathlib import Path

from medyate.strategy_names import BENCHMARK_STRATEGIES as STRATEGIES

ROOT = Path(__file__).resolve().parents[2]


def test_quick_grid(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "strategies.py"), "--quick",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "expected duration" in proc.stdout and "ETA" in proc.stdout

    table = (tmp_path / "strategies.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()
            if line.startswith("| ") and line.count("|") > 3}
    for s in STRATEGIES:
        assert s in rows, f"no row for {s} in the table"
    assert "Goal check" in table
    assert (tmp_path / "strategies.png").stat().st_size > 1000

    records = [json.loads(l) for l in (tmp_path / "strategies.jsonl").read_text().splitlines()]
    records = [r for r in records if r.get("kind") != "skipped"]
    assert {r["strategy"] for r in records} == set(STRATEGIES)
    budget = 256 * 1024     # the quick grid's one RAM budget
    for r in records:
        assert math.isfinite(r["test_acc"]) and 0.0 <= r["test_acc"] <= 1.0
        assert r["peak_ram"] > 0
        if r["strategy"] != "full":     # full fine-tuning ignores the budget
            assert r["peak_ram"] <= budget, r
    full = next(r for r in records if r["strategy"] == "full")
    assert full["peak_ram"] > budget    # reported, not clipped
