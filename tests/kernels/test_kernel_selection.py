"""Kernel selection as in TensorFlow Lite Micro: a file of a selected
optimized folder replaces the reference file of the same name, in the host
cffi build and in the CMake build alike (both run firmware/engine_build.py),
and every Cortex-M7 board and the host compile the same selection."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medyate.boards import build_firmware, get_board
from medyate.engine.build import KERNELS_DIR, kernel_selection, kernel_sources, load_engine
from medyate.errors import MedyateError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kernels"


@pytest.fixture(scope="module")
def tree() -> Path:
    """A kernels tree: the real reference kernels (a link) and the folder
    'marked', whose mdy_add_f32.c adds 1000 to every sum. In the repository, so
    that its host build is cached like the engine's."""
    return FIXTURES / "tree"


def test_same_name_file_replaces_reference_and_nothing_else(tree):
    ref = kernel_sources((), tree)
    sel = kernel_sources(("marked",), tree)
    assert len(sel) == len(ref)
    changed = [(r, s) for r, s in zip(ref, sel) if r != s]
    assert changed == [(tree / "reference/fp32/mdy_add_f32.c", tree / "marked/fp32/mdy_add_f32.c")]


def test_first_listed_folder_wins(tree, tmp_path):
    root = tmp_path / "k"
    shutil.copytree(tree, root)
    shutil.copytree(tree / "marked", root / "other")
    assert root / "other/fp32/mdy_add_f32.c" in kernel_sources(("other", "marked"), root)
    assert root / "marked/fp32/mdy_add_f32.c" in kernel_sources(("marked", "other"), root)


def test_bad_selections_are_named(tree, tmp_path):
    with pytest.raises(MedyateError, match="unknown kernel folder 'nope'.*known: marked"):
        kernel_sources(("nope",), tree)
    root = tmp_path / "k"
    shutil.copytree(tree, root)
    (root / "marked" / "fp32" / "mdy_new_f32.c").write_text("int x;\n")
    with pytest.raises(MedyateError, match=r"marked/fp32/mdy_new_f32.c has no reference "
                                           r"kernel reference/fp32/mdy_new_f32.c"):
        kernel_sources(("marked",), root)


def test_cffi_build_compiles_the_selected_file(tree):
    y = np.zeros(2, np.float32)
    for selection, want in (((), [3, 5]), (("marked",), [1003, 1005])):
        ffi, lib = load_engine(parts=("kernels",), kernels=selection, kernels_dir=tree)
        a, b = np.array([1, 2], np.float32), np.array([2, 3], np.float32)
        lib.mdy_add_f32(2, ffi.from_buffer("float[]", a), ffi.from_buffer("float[]", b),
                        ffi.from_buffer("float[]", y))
        np.testing.assert_array_equal(y, want)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_build_compiles_the_selected_file(tree, tmp_path):
    for selection, want in (([], "3"), (["marked"], "1003")):
        res = build_firmware("host", None, tmp_path / "build", app_sources=[FIXTURES / "print_add.c"],
                             extra_defs={"MEDYATE_KERNELS": selection,
                                         "MEDYATE_KERNELS_DIR": str(tree)})
        out = subprocess.run([str(res.elf)], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == want, (selection, out.stdout, out.stderr)


def test_host_selects_what_the_cortex_m7_boards_select():
    m7 = {get_board(b).kernels for b in ("qemu-mps2-an500", "nucleo-f746")}
    assert m7 == {("cortex-m7",)}
    assert kernel_selection() == ("cortex-m7",)
    assert kernel_sources() == kernel_sources(("cortex-m7",))
