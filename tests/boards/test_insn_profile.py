"""The QEMU instruction-count plugin counts each function's instructions
exactly: the test app's spin loop is 2 instructions per iteration."""
from __future__ import annotations

from pathlib import Path

import pytest

from medyate.session import insn_profile
from medyate.session.insn_profile import InsnProfile
from medyate.session.qemu import QemuMachine

from boards_testlib import needs_qemu

pytestmark = [needs_qemu, pytest.mark.skipif(not insn_profile.available(),
                                             reason="no host cc or arm-none-eabi-nm")]


def test_extents_are_sorted_functions(qemu_image):
    ext = insn_profile.function_extents(qemu_image.elf)
    names = [n for _, _, n in ext]
    assert "main" in names and "spin_2" in names and "board_cycles" in names
    assert all(s < e for s, e, _ in ext)
    assert all(a[1] <= b[0] for a, b in zip(ext, ext[1:]))


def test_counts_are_exact_per_function(qemu_image, tmp_path):
    prof = InsnProfile(qemu_image.elf, tmp_path)
    with QemuMachine(qemu_image.elf, extra_args=prof.qemu_args(), timeout=10) as m:
        assert m.read_line() == b"HELLO qemu-mps2-an500\n"
        for _ in range(3):
            m.serial.write(b"L")                 # spin_2(1,000,000)
            assert m.read_line().startswith(b"LOOP ")
        m.serial.write(b"X\x00")
        assert m.wait(timeout=10) == 0
    counts = prof.read()
    # 3 calls x (1e6 iterations x 2 instructions + the few around the loop:
    # loading n, the return): exact and the same every call, where SysTick
    # would give +-40 per reading.
    per_call, rest = divmod(counts["spin_2"], 3)
    assert rest == 0 and 2_000_000 < per_call <= 2_000_004
    assert counts[insn_profile.TOTAL] == sum(v for k, v in counts.items() if k != insn_profile.TOTAL)
    assert counts["main"] > 0


def test_counts_by_object_file(qemu_image, tmp_path):
    """With the linker map, code is counted per object file: the test app's
    spin loop is inside test_app's object, with main and its other helpers."""
    map_file = next(Path(qemu_image.elf).parent.glob("*.map"))
    ext = insn_profile.object_extents(map_file)
    assert all(a[1] <= b[0] for a, b in zip(ext, ext[1:]))
    assert "test_app" in {n for _, _, n in ext}
    prof = InsnProfile(qemu_image.elf, tmp_path, map_file=map_file)
    with QemuMachine(qemu_image.elf, extra_args=prof.qemu_args(), timeout=10) as m:
        assert m.read_line() == b"HELLO qemu-mps2-an500\n"
        m.serial.write(b"L")
        assert m.read_line().startswith(b"LOOP ")
        m.serial.write(b"X\x00")
        assert m.wait(timeout=10) == 0
    counts = prof.read()
    assert counts["test_app"] > 2_000_000
