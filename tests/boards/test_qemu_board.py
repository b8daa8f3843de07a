"""The QEMU board image runs in qemu-system-arm -M mps2-an500 -icount shift=0:
UART echo of binary data, the instruction counter across the 24-bit SysTick
wrap, stack high-water, the dataset at 0x60000000, exit codes, fault report."""
from __future__ import annotations

import pytest

from medyate.boards import get_board
from medyate.session.qemu import QemuMachine

from boards_testlib import needs_qemu

pytestmark = needs_qemu


@pytest.fixture
def machine(qemu_image):
    m = QemuMachine(qemu_image.elf, timeout=10)
    try:
        m.start()
        assert m.read_line() == b"HELLO qemu-mps2-an500\n"
        yield m
    finally:
        m.close()
        assert m.proc is None or m.proc.poll() is not None, "QEMU left running"


def test_echo_binary_and_exit_code(machine):
    chunks = [b"\x01\x18\x00\xff\x03\x04\x1a\x7f\x80\r\n", bytes(range(256))[:255],
              bytes(range(255, 0, -1))]
    for chunk in chunks:
        machine.serial.write(b"E" + bytes([len(chunk)]) + chunk)
        assert machine.read_exact(len(chunk)) == chunk
    machine.serial.write(b"X\x2a")
    assert machine.wait(timeout=10) == 42


def _numbers(line: bytes, tag: bytes):
    parts = line.split()
    assert parts[0] == tag, line
    return [int(x) for x in parts[1:]]


def test_cycle_counter_counts_instructions_across_the_wrap(machine):
    machine.serial.write(b"L")            # 2,000,000 instructions
    (loop,) = _numbers(machine.read_line(), b"LOOP")
    assert abs(loop - 2_000_000) <= 80   # 40-instruction resolution
    machine.serial.write(b"C")
    c0, hz = _numbers(machine.read_line(), b"CYC")
    assert hz == 1_000_000_000
    # 1.34e9 instructions: two SysTick wraps (2^24 ticks x 40 instructions).
    machine.serial.write(b"M")
    bad, reads, elapsed = _numbers(machine.read_line(timeout=30), b"MONO")
    assert bad == 0 and reads > 100_000
    assert elapsed >= 5 << 28
    machine.serial.write(b"C")
    c1, _ = _numbers(machine.read_line(), b"CYC")
    assert c1 - c0 >= elapsed > 2 * (1 << 24) * 40
    # A read with nothing to receive times out after 2 ms = 2e6 instructions.
    machine.serial.write(b"T")
    got, spent = _numbers(machine.read_line(), b"TIMEOUT")
    assert got == 0 and 2_000_000 <= spent < 2_010_000


def test_stack_high_water(machine):
    machine.serial.write(b"S")
    used, size = _numbers(machine.read_line(), b"STACK")
    assert size == get_board("qemu-mps2-an500").stack_default
    assert 0 < used < size


def test_no_dataset_without_loader(machine):
    machine.serial.write(b"D")
    assert machine.read_line() == b"DATA NULL\n"


def test_dataset_loaded_at_0x60000000(qemu_image, tmp_path):
    data = tmp_path / "dataset.bin"
    data.write_bytes(b"MDYD\x10\x20\x30\x40" + bytes(1000))
    with QemuMachine(qemu_image.elf, dataset=data, timeout=10) as m:
        assert "addr=0x60000000" in " ".join(m.command)
        m.read_line()
        m.serial.write(b"D")
        assert m.read_line() == b"DATA MDYD\x10\x20\x30\x40\n"
    assert m.returncode is not None


def test_fault_is_reported_and_exits_nonzero(machine):
    machine.serial.write(b"F")
    assert machine.read_line() == b"READING\n"
    lines = []
    while not lines or not lines[-1].startswith(b"FAULT"):
        lines.append(machine.read_line())
    fault = lines[-1].decode()
    assert "CFSR=0x" in fault and "HFSR=0x" in fault and "PC=0x" in fault
    assert machine.wait(timeout=10) == 3
