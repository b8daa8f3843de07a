"""The same device code on the target: cross-compiled for the Cortex-M7 with
the QEMU board, driven over QEMU's socket serial, it gives the same session
results as the native device process (fp32 tolerance)."""
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from medyate.engine.build import kernel_selection, kernel_sources
from medyate.protocol import Device, Link
from protocol_helpers import model_config, session

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FW = REPO / "firmware"
BOARD = REPO / "boards" / "qemu-mps2-an500"
COMMON = REPO / "boards" / "common" / "cortex-m7"
ARM_FLAGS = ["-std=c99", "-O2", "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16",
             "-mfloat-abi=hard", "-Wall", "-Wextra", "-Werror"]

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
         and (BOARD / "linker.ld").exists()),
    reason="needs arm-none-eabi-gcc, qemu-system-arm and boards/qemu-mps2-an500")


@pytest.fixture(scope="module")
def firmware(build_dir, device_exe):
    elf = build_dir / "fixture-qemu.elf"
    srcs = (sorted((FW / "src" / "device").glob("*.c")) + kernel_sources(kernel_selection(BOARD.name))
            + sorted((FW / "src" / "runtime").glob("*.c"))
            + [BOARD / "board.c", COMMON / "cortex_m7.c", COMMON / "startup.S",
               HERE / "fixture_model.c"])
    r = subprocess.run(["arm-none-eabi-gcc", *ARM_FLAGS, f"-I{FW / 'include'}",
                        f"-I{FW / 'src' / 'device'}", f"-I{COMMON}",
                        f"-I{model_config(build_dir, 'fixture_model.c')}", *map(str, srcs),
                        f"-T{BOARD / 'linker.ld'}", f"-L{COMMON}",
                        "-specs=nano.specs", "-specs=nosys.specs", "-Wl,--gc-sections", "-lm",
                        "-o", str(elf)], capture_output=True, text=True)
    if r.returncode:
        pytest.fail(r.stderr)
    return elf


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_qemu_matches_native(firmware, dataset, device_process):
    import serial
    native = session(device_process().device())
    port = _free_port()
    q = subprocess.Popen(
        ["qemu-system-arm", "-M", "mps2-an500", "-display", "none", "-monitor", "none",
         "-icount", "shift=0", "-semihosting-config", "enable=on,target=native",
         "-chardev", f"socket,id=s0,host=127.0.0.1,port={port},server=on,wait=on",
         "-serial", "chardev:s0", "-kernel", str(firmware),
         "-device", f"loader,file={dataset},addr=0x60000000,force-raw=on"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                ser = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.05)
                break
            except serial.SerialException:
                time.sleep(0.05)
        else:
            pytest.fail("QEMU serial did not come up")
        dev = Device(Link(ser, timeout=10.0))
        info = dev.info()
        assert info.board == "qemu-mps2-an500" and info.stack_size > 0
        emu = session(dev)
        s = dev.get_stats()
        assert 0 < s.stack_high_water < info.stack_size
        assert s.cycles_forward > 0 and s.cycles_backward > 0
        dev.shutdown(0)
        assert q.wait(10) == 0
    finally:
        if q.poll() is None:
            q.kill()
            q.wait()
        q.stderr.close()
    for a, b in zip(native["stats"], emu["stats"]):
        assert a[1:4] == b[1:4]
        assert a[0] == pytest.approx(b[0], rel=1e-4)
        assert np.allclose(a[4], b[4], rtol=1e-3, atol=1e-7)
    for (wa, ba), (wb, bb) in zip(native["weights"], emu["weights"]):
        assert np.allclose(wa, wb, rtol=1e-4, atol=1e-6) and np.allclose(ba, bb, rtol=1e-4, atol=1e-6)
