#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for medyate: the Arm toolchain, QEMU,
# the Fashion-MNIST data set, and a Python virtual environment in .venv.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="gcc g++ clang make cmake python3-venv gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm dataset-fashion-mnist"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing apt packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  $PY -m venv .venv
fi
if ! .venv/bin/python -c "import medyate, pytest, hypothesis, xdist, sklearn" >/dev/null 2>&1; then
  echo "setup: installing medyate into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test,data]'
fi
echo "setup: ready"
