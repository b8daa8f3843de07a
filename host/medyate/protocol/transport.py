"""Serial-port-like objects for links that are not serial ports.

`Link` needs only read(n) honouring `timeout`, write(data), `in_waiting`,
reset_input_buffer() and close(): pyserial's interface. PipeSerial gives that
over a pair of pipes, e.g. the stdin/stdout of a device process built for the
host (boards/host), which is how tests and the host session talk to it.
"""
from __future__ import annotations

import os
import select


class PipeSerial:
    def __init__(self, read_fd, write_fd, timeout: float | None = 0.1):
        self._r = read_fd if isinstance(read_fd, int) else read_fd.fileno()
        self._w = write_fd if isinstance(write_fd, int) else write_fd.fileno()
        self.timeout = timeout
        self.is_open = True
        self._pending = bytearray()

    def _fill(self, wait: float | None) -> None:
        r, _, _ = select.select([self._r], [], [], wait)
        if r:
            data = os.read(self._r, 65536)
            if not data:
                raise OSError("pipe closed by the device")
            self._pending += data

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise OSError("port closed")
        self._fill(0)
        return len(self._pending)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise OSError("port closed")
        if not self._pending:
            self._fill(self.timeout)
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise OSError("port closed")
        view = memoryview(bytes(data))
        while view:
            n = os.write(self._w, view)
            view = view[n:]
        return len(data)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self._pending.clear()
        while True:
            r, _, _ = select.select([self._r], [], [], 0)
            if not r or not os.read(self._r, 65536):
                return

    def close(self) -> None:
        # The fds belong to the process that was started; closing the port
        # object only detaches this view of them.
        self.is_open = False
