"""Run a firmware image in QEMU and talk to it over a socket.

    with QemuMachine(elf, dataset="data.bin") as m:
        m.serial.write(b"...")
        ...
        code = m.wait(timeout=10)      # the firmware's exit code

QEMU waits for the host to connect before it starts the guest (server=on,
wait=on), so no output is lost. Binary data passes unchanged: the serial port
is a socket chardev, never -nographic's stdio mux (whose Ctrl-A x would end
QEMU). Whatever happens in the `with` block (an error, Ctrl-C), QEMU is
terminated on the way out. The machine, the instruction counting and where
the dataset image is loaded are the board's (board.json "qemu" and
"dataset.address", through medyate.boards).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..boards import emulated_board, get_board
from ..errors import MedyateError

QEMU = "qemu-system-arm"


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_command(elf, port: int, dataset=None, board=None, icount: bool = True,
                 extra_args=()) -> list[str]:
    """The exact qemu-system-arm command line for `elf` served on `port`.
    board: name or Board (default: the one board QEMU runs)."""
    b = get_board(board) if board is not None else emulated_board()
    cmd = [QEMU, "-M", b.fact("qemu_machine"), "-display", "none", "-monitor", "none",
           "-chardev", f"socket,id=s0,host=127.0.0.1,port={port},server=on,wait=on",
           "-serial", "chardev:s0",
           "-semihosting-config", "enable=on,target=native",
           "-kernel", str(elf)]
    if icount and b.qemu_icount:
        cmd += ["-icount", b.qemu_icount]
    if dataset is not None:
        addr = b.fact("dataset_address")
        cmd += ["-device", f"loader,file={dataset},addr=0x{addr:08x},force-raw=on"]
    return cmd + list(extra_args)


class QemuMachine:
    """A running QEMU with the firmware's UART0 as `self.serial` (pyserial).

    `returncode` is None while QEMU runs, then QEMU's exit status: the code
    the firmware passed to board_exit (semihosting), or a negative signal
    number if QEMU had to be killed.
    """

    def __init__(self, elf, dataset=None, *, board=None,
                 icount: bool = True, extra_args=(), timeout: float = 5.0,
                 connect_timeout: float = 10.0):
        self.elf = Path(elf)
        self.dataset = Path(dataset) if dataset is not None else None
        self.board = get_board(board) if board is not None else emulated_board()
        self.icount = icount
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.serial = None
        self.command: list[str] = []
        self._log = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "QemuMachine":
        if shutil.which(QEMU) is None:
            raise MedyateError(f"{QEMU} not found: install the Debian package qemu-system-arm")
        if not self.elf.is_file():
            raise MedyateError(f"firmware image {self.elf} does not exist")
        if self.dataset is not None and not self.dataset.is_file():
            raise MedyateError(f"dataset image {self.dataset} does not exist")
        import serial  # pyserial

        last_err = None
        for _attempt in range(3):  # the free port may be taken in between
            self.port = free_port()
            self.command = qemu_command(self.elf, self.port, self.dataset, self.board,
                                        self.icount, self.extra_args)
            self._log = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + self.connect_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    self.serial = serial.serial_for_url(
                        f"socket://127.0.0.1:{self.port}", timeout=self.timeout)
                    return self
                except (serial.SerialException, OSError) as exc:
                    last_err = exc
                    time.sleep(0.02)
            log = self.log()
            self._kill()
            if "Address already in use" not in log and "Failed to bind" not in log:
                raise MedyateError(
                    f"QEMU did not accept a connection on port {self.port}: "
                    f"{last_err or ''}\n{log[-2000:]}")
        raise MedyateError(f"could not start QEMU on a free port: {last_err}")

    def __enter__(self) -> "QemuMachine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def log(self) -> str:
        """What QEMU printed on stdout/stderr so far."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def wait(self, timeout: float | None = 10.0) -> int:
        """Wait for the firmware to exit; its exit code. On timeout QEMU is
        killed and MedyateError raised."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise MedyateError(f"QEMU did not exit within {timeout} s") from None

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> int | None:
        """Disconnect and make sure QEMU is gone. Returns its exit status."""
        if self.serial is not None:
            try:
                self.serial.close()
            except Exception:
                pass
            self.serial = None
        self._kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode if self.proc else None

    # -------------------------------------------------------------- helpers
    def read_line(self, timeout: float | None = None) -> bytes:
        """One line from the firmware (up to and including b"\\n")."""
        old = self.serial.timeout
        if timeout is not None:
            self.serial.timeout = timeout
        try:
            line = self.serial.readline()
        finally:
            self.serial.timeout = old
        if not line.endswith(b"\n"):
            raise MedyateError(f"no complete line from the firmware (got {line!r})")
        return line

    def read_exact(self, n: int) -> bytes:
        data = self.serial.read(n)
        if len(data) != n:
            raise MedyateError(f"expected {n} bytes from the firmware, got {len(data)}")
        return data
