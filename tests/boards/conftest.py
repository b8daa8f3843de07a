"""Fixtures of the board tests: images of the small test app, built once per
test run for each board."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from boards_testlib import build_app  # noqa: E402


@pytest.fixture(scope="session")
def qemu_image(tmp_path_factory):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    return build_app("qemu-mps2-an500", tmp_path_factory.mktemp("qemu-build"))


@pytest.fixture(scope="session")
def nucleo_image(tmp_path_factory):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    return build_app("nucleo-f746", tmp_path_factory.mktemp("nucleo-build"))
