#!/usr/bin/env bash
# A long libFuzzer pass over the device's frame parser and dispatcher
# (tests/fuzz/test_fuzz_device.py; CI runs the same target for 20 s).
# Usage: scripts/fuzz_device.sh [SECONDS]   (default 3600)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MEDYATE_FUZZ_SECONDS="${1:-3600}" PYTHONPATH="$PWD/host" \
  exec "$PY" -m pytest -q -s tests/fuzz/test_fuzz_device.py
