"""Board images build with arm-none-eabi-gcc, fit the F746, and an image that
does not fit fails at link time with a clear message."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from medyate.boards import get_board, list_boards, build_firmware
from medyate.errors import MedyateError
from medyate.session.memory_report import format_memory_report, memory_report

from boards_testlib import build_app, needs_arm_gcc

F746_FLASH = 1024 * 1024
F746_RAM = 320 * 1024


def test_registry_reads_every_board_folder():
    names = [b.name for b in list_boards()]
    assert {"host", "qemu-mps2-an500", "nucleo-f746"} <= set(names)
    n = get_board("nucleo-f746")
    assert (n.flash, n.ram) == (F746_FLASH, F746_RAM)
    assert "-mfpu=fpv5-sp-d16" in n.cpu_flags and "-mfloat-abi=hard" in n.cpu_flags
    assert n.serial_baud == 115200 and "st-flash" in n.flash_methods
    q = get_board("qemu-mps2-an500")
    assert (q.flash, q.ram) == (F746_FLASH, F746_RAM)
    with pytest.raises(MedyateError, match="unknown board 'nope'.*nucleo-f746"):
        get_board("nope")


def _symbol(elf, name):
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts[-1] == name:
            return int(parts[0], 16)
    raise AssertionError(f"{name} not in {elf}")


@needs_arm_gcc
@pytest.mark.parametrize("which,flash_origin", [("qemu_image", 0x0), ("nucleo_image", 0x08000000)])
def test_arm_image_builds_and_fits(request, which, flash_origin):
    res = request.getfixturevalue(which)
    for p in (res.elf, res.bin, res.map):
        assert p.is_file() and p.stat().st_size > 0
    assert _symbol(res.elf, "mdy_vectors") == flash_origin      # vector table first
    assert _symbol(res.elf, "__stack_bottom") == 0x20000000
    reserve = res.board.stack_default
    assert _symbol(res.elf, "__stack_top") - _symbol(res.elf, "__stack_bottom") == reserve
    assert list(res.build_dir.rglob("*.su")), "-fstack-usage output missing"
    rep = memory_report(res.elf, board=res.board)
    assert rep["flash"]["capacity"] == F746_FLASH and rep["ram"]["capacity"] == F746_RAM
    assert 0 < rep["flash"]["total"] <= F746_FLASH
    assert rep["ram"]["stack_reserve"] == reserve
    assert reserve < rep["ram"]["total"] <= F746_RAM
    assert 0 < rep["stack"]["bound"] <= reserve
    assert rep["stack"]["deepest_frame"]["bytes"] > 0
    json.dumps(rep)
    table = format_memory_report(rep)
    assert "stack reserve" in table and "deepest stack frame" in table


@needs_arm_gcc
def test_ram_overflow_fails_at_link_time_with_clear_message(tmp_path):
    with pytest.raises(MedyateError) as info:
        build_app("nucleo-f746", tmp_path, defines=["TEST_BIG_RAM=400000"])
    msg = str(info.value)
    # 400000 + the stack reserve + a little static data, against 327680.
    reserve = get_board("nucleo-f746").stack_default
    assert "does not fit the nucleo-f746 board" in msg
    assert "RAM overflowed by" in msg
    over = int(msg.split("RAM overflowed by ")[1].split()[0])
    assert 400000 + reserve - F746_RAM <= over < 400000 + reserve - F746_RAM + 1024
    assert "test_big_ram_buffer" in msg.split("largest parts in RAM:")[1].splitlines()[1]
    assert f"{reserve} bytes of stack reserve" in msg


@needs_arm_gcc
def test_flash_overflow_fails_at_link_time_with_clear_message(tmp_path):
    with pytest.raises(MedyateError) as info:
        build_app("qemu-mps2-an500", tmp_path, defines=["TEST_BIG_FLASH=1100000"])
    msg = str(info.value)
    assert "FLASH overflowed by" in msg and "of 1048576" in msg
    assert "test_big_flash_table" in msg.split("largest parts in FLASH:")[1].splitlines()[1]


@needs_arm_gcc
def test_bigger_stack_reserve_is_checked_too(tmp_path):
    with pytest.raises(MedyateError, match="RAM overflowed by"):
        build_firmware("nucleo-f746", None, tmp_path, app_sources=[
            os.path.join(os.path.dirname(__file__), "app", "test_app.c")],
            extra_defs={"MEDYATE_WITH_ENGINE": False, "MEDYATE_STACK_SIZE": 330 * 1024})


@needs_arm_gcc
def test_compile_error_shows_compiler_output(tmp_path):
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return undeclared_thing; }\n")
    with pytest.raises(MedyateError, match="undeclared_thing"):
        build_firmware("qemu-mps2-an500", None, tmp_path / "b", app_sources=[bad],
                       extra_defs={"MEDYATE_WITH_ENGINE": False})


def test_host_board_runs_device_code_as_a_process(tmp_path):
    res = build_app("host", tmp_path / "b")
    assert res.elf.is_file()
    data = tmp_path / "data.bin"
    data.write_bytes(b"MDYD\x01\x02\x03\x04rest")
    payload = bytes(range(256))[:200]
    stdin = b"E" + bytes([len(payload)]) + payload + b"DSX\x07"
    r = subprocess.run([str(res.elf)], input=stdin, capture_output=True, timeout=20,
                       env={**os.environ, "MEDYATE_DATASET": str(data)})
    assert r.returncode == 7
    assert r.stdout.startswith(b"HELLO host\n" + payload + b"DATA MDYD\x01\x02\x03\x04\n")
    # Without a dataset: NULL; closing stdin ends the process with 0.
    env = {k: v for k, v in os.environ.items() if k != "MEDYATE_DATASET"}
    r = subprocess.run([str(res.elf)], input=b"D", capture_output=True, timeout=20, env=env)
    assert r.returncode == 0 and b"DATA NULL\n" in r.stdout
