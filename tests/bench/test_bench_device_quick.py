"""Smoke test of bench/device_instr.py in QEMU: its --quick run prints and
writes instructions per MAC for a layer type and the mbv2-tiny full/sparse
table, with positive, finite numbers, and sparse backward costs fewer MACs
(and instructions) than full backward."""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medyate.session import insn_profile

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and gcc-arm-none-eabi")


def positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _quick(tmp_path, *extra):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "device_instr.py"), "--quick",
                           "--out", str(tmp_path), "--work", str(tmp_path / "work"), *extra],
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def board_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("board")
    return tmp, _quick(tmp)


def test_device_instr_quick(board_run):
    tmp_path, proc = board_run

    res = json.loads((tmp_path / "device_instr.json").read_text())
    table = (tmp_path / "device_instr.md").read_text()
    assert res["layer_types"], "no layer-type rows"
    for r in res["layer_types"]:
        assert f"| {r['type']} |" in table and f"| {r['type']} |" in proc.stdout
        for k in ("forward_per_mac", "backward_input_per_mac", "backward_weight_per_mac",
                  "backward_per_mac", "update_per_weight", "map_save_per_element"):
            assert positive(r[k]), (r["type"], k, r[k])
        for k in ("forward_per_mac", "backward_per_mac", "update_per_weight"):
            assert positive(r["raw"][k]), (r["type"], "raw", k)
        if insn_profile.available():             # exact per-kernel counts
            assert res["counter"] == "plugin"
            for k in ("forward_per_mac", "backward_input_per_mac", "backward_weight_per_mac",
                      "input_grad_over_forward", "update_per_weight"):
                assert positive(r["kernel"][k]), (r["type"], "kernel", k)
            # the kernels alone are part of what the SysTick phases measure
            assert r["kernel"]["instr_forward"] <= r["instr_forward"] + 80

    rows = {r["name"]: r for r in res["mbv2"]["rows"]}
    assert list(rows) == ["full", "uniform 5%", "deep 5%"]
    for name, r in rows.items():
        assert f"| {name} |" in table and f"| {name} |" in proc.stdout
        for k in ("instr_forward", "instr_backward", "instr_update", "instr_step",
                  "forward_per_mac", "backward_per_mac"):
            assert positive(r[k]), (name, k, r[k])
        for k in ("forward", "backward_input", "backward_weight"):
            assert positive(r["macs"][k]), (name, k)
    full = rows["full"]
    full_bwd = full["macs"]["backward_input"] + full["macs"]["backward_weight"]
    for name in ("uniform 5%", "deep 5%"):
        m = rows[name]["macs"]
        assert m["backward_input"] + m["backward_weight"] < full_bwd, name
        assert rows[name]["instr_backward"] < full["instr_backward"], name
        assert rows[name]["channels"] < full["channels"]
    assert res["mbv2"]["ram_footprint"]["total"] <= 327680


def test_reference_kernels_cost_more_than_the_boards(board_run, tmp_path):
    """--kernels reference builds the reference kernels only (what the optimized
    Cortex-M7 kernels are measured against), into its own result files."""
    _quick(tmp_path / "ref", "--kernels", "reference")
    board = json.loads((board_run[0] / "device_instr.json").read_text())
    ref = json.loads((tmp_path / "ref" / "device_instr_reference.json").read_text())
    assert ref["kernels"] == "reference" and board["kernels"] == "board"
    assert "--kernels reference" in (tmp_path / "ref" / "device_instr_reference.md").read_text()
    steps = lambda res: {r["name"]: r["instr_step"] for r in res["mbv2"]["rows"]}  # noqa: E731
    for name, n in steps(board).items():
        assert steps(ref)[name] > 1.5 * n, name
