"""Every benchmark script answers --help with its usage and runs nothing
(a benchmark can take an hour; asking it what it does must not start it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "bench").glob("*.py"))


def test_every_benchmark_answers_help_without_running():
    assert len(SCRIPTS) >= 10, SCRIPTS
    env = dict(os.environ, PYTHONPATH=str(REPO / "host"))
    before = {p: p.stat().st_mtime_ns for p in (REPO / "bench" / "results").iterdir()}
    procs = {s: subprocess.Popen([sys.executable, str(s), "--help"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env) for s in SCRIPTS}
    for script, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{script.name} --help failed:\n{err}"
        assert out.startswith("usage:") and "--help" in out, f"{script.name} --help:\n{out}"
    after = {p: p.stat().st_mtime_ns for p in (REPO / "bench" / "results").iterdir()}
    assert after == before, "a benchmark wrote results when asked for --help"
