"""Helpers of the board tests (a uniquely named module: several test
folders have a conftest.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medyate.boards import build_firmware

APP = Path(__file__).parent / "app" / "test_app.c"
NO_ENGINE = {"MEDYATE_WITH_ENGINE": False}

needs_arm_gcc = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                   reason="arm-none-eabi-gcc not installed")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm not installed")


def build_app(board, out, defines=()):
    defs = dict(NO_ENGINE)
    if defines:
        defs["MEDYATE_DEFINES"] = list(defines)
    return build_firmware(board, None, out, app_sources=[APP], extra_defs=defs)
