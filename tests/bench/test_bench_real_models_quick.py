"""Smoke test of the real-model benchmark: its --quick grid chooses each strategy's
learning rate on the validation part, runs every strategy on mcunet-5fps's int8 path
(full fine-tuning in float), the layer oracle, and writes the table, plot and records."""
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ("full", "last", "bias", "su", "static-random", "trady", "medyate")


def test_quick_grid(tmp_path):
    cmd = [sys.executable, str(ROOT / "bench" / "real_models.py"), "--quick", "--out", str(tmp_path)]
    # in two sittings: the first stops after its first run (a budget of 0 h),
    # the second takes that run from the journal and does the rest
    first = subprocess.run(cmd + ["--stop-after", "0"], capture_output=True, text=True,
                           timeout=400, cwd=ROOT)
    assert first.returncode == 3, first.stdout + first.stderr
    assert "--resume" in first.stdout and not (tmp_path / "real_models_quick.md").exists()
    journal = (tmp_path / "real_models_quick.runs.jsonl").read_text().splitlines()
    assert [json.loads(l)["kind"] for l in journal] == ["grid", "select", "session"]
    proc = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=400,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ETA" in proc.stdout
    assert "select: 1 of " in proc.stdout      # the first sitting's run, not run again
    table = (tmp_path / "real_models_quick.md").read_text()
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")}
    assert set(STRATEGIES) <= rows
    assert "Goal check" in table and "rho LaRa" in table
    assert (tmp_path / "real_models_quick.png").stat().st_size > 1000

    recs = [json.loads(l) for l in (tmp_path / "real_models_quick.jsonl").read_text().splitlines()]
    first_run = json.loads(journal[1])
    assert first_run in recs                   # the journal's record, as it was
    final = [r for r in recs if r["kind"] == "final"]
    assert {r["strategy"] for r in final} == set(STRATEGIES)
    for r in final:
        assert math.isfinite(r["acc"]) and 0.0 <= r["acc"] <= 1.0
        assert r["device_ram"] > 0 and r["train_mem"] > 0
    assert {r["scheme"] for r in final if r["strategy"] == "medyate"} == {"49kb", "256KiB device"}
    by = {r["strategy"]: r for r in final if r["scheme"] in (None, "49kb")}
    # at the device-RAM budget the planned strategies solve their own channel
    # budget against the whole device, and what they ran fits it
    for s in ("static-random", "trady", "medyate"):
        dev = [r for r in final if r["strategy"] == s and r["scheme"] == "256KiB device"][0]
        assert dev["plan_ram"] <= 256 * 1024 and dev["device_ram"] <= dev["plan_ram"], dev
        assert dev["budget_words"] != by[s]["budget_words"]
    assert "256KiB device: acc" in table
    # bias-only layers keep their weights in flash: the device holds the head's
    # weights and every bias, far less than the int8 weights of the network
    assert by["bias"]["weight_layers"] == ["classifier"] and by["bias"]["bias_layers"]
    assert by["su"]["bias_layers"] and by["su"]["device_ram"] < by["static-random"]["device_ram"]
    # SU runs TTE's scheme; the budget is that scheme's training memory, and every
    # other budgeted strategy gets the same
    su = by["su"]
    assert su["scheme"] == "49kb" and su["train_mem"] == 4 * su["budget_words"]
    for s in ("static-random", "trady", "medyate"):
        assert by[s]["budget_words"] == su["budget_words"]
        assert 0.9 * su["train_mem"] < by[s]["train_mem"] <= su["train_mem"], by[s]
    assert by["full"]["train_mem"] > 10 * su["train_mem"]
    # the float upper bound runs the float engine: its device RAM is the fp32 plan's
    assert by["full"]["device_ram"] > by["medyate"]["device_ram"]
    # the choice is made on the validation part only
    sel = [r for r in recs if r["kind"] == "select"]
    assert sel and all(r["split"] == "select" for r in sel)
    assert {r["epochs"] for r in sel if r["strategy"] == "last"} == {1, 3}
    oracle = [r for r in recs if r["kind"] == "oracle"]
    assert [r["layer"] for r in oracle][0] is None and len(oracle) == 3   # head + 2 layers
    assert all(math.isfinite(r["loss"]) for r in oracle)
