"""Smoke test of bench/engine_step.py: its --quick run prints and writes the
full/sparse table with positive, finite numbers, and sparse backward costs
fewer MACs than full backward. Timings are not asserted (they vary)."""
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ["full", "uniform 5%", "importance 5%", "deep 5%", "with stem 5%"]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def test_engine_step_quick(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "engine_step.py"), "--quick",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    table = (tmp_path / "engine_step.md").read_text()
    rows = {line.split("|")[1].strip() for line in table.splitlines()
            if line.startswith("| ") and line.count("|") > 10}
    for v in VARIANTS:
        assert v in rows, f"no row for {v} in the table"
        assert f"| {v} |" in proc.stdout

    res = json.loads((tmp_path / "engine_step.json").read_text())
    got = {r["name"]: r for r in res["variants"]}
    assert list(got) == VARIANTS
    sides = ["medyate"] + (["torch"] if HAS_TORCH else [])
    for r in got.values():
        for k in ("forward", "backward_input", "backward_weight", "backward", "total"):
            assert positive(r["macs"][k]), (r["name"], k, r["macs"][k])
        for side in sides:
            for k in ("forward_us", "backward_us", "update_us", "samples_per_s_b1",
                      "samples_per_s_b8"):
                assert positive(r[side][k]), (r["name"], side, k, r[side][k])
        assert positive(r["ratio_backward_macs"]) and positive(r["ratio_backward_time_medyate"])

    full = got["full"]["macs"]
    assert full["backward_weight"] == full["forward"]      # every channel trains
    for name in VARIANTS[1:]:
        m = got[name]["macs"]
        assert m["forward"] == full["forward"]
        assert m["backward"] < full["backward"], name
        assert m["backward_weight"] < full["backward_weight"], name
        assert got[name]["channels"] < got["full"]["channels"]
    # backward reach: the stem's channel runs the whole input-gradient chain,
    # the deepest layers only part of it
    assert got["with stem 5%"]["macs"]["backward_input"] == full["backward_input"]
    assert got["deep 5%"]["macs"]["backward_input"] < full["backward_input"]
    if HAS_TORCH:
        assert res["torch"]["threads"] == 1
        assert res["torch"]["max_abs_weight_delta_diff_one_step"] < 1e-4
