"""Request/answer over a serial link: sequence numbers, timeouts, retries,
reconnects.

Every request carries a sequence number; a retry resends the very same frame
(same seq, same bytes). The device remembers the seq and CRC of the last
request it executed and answers a repeat from its cache without executing it
again, so retrying is always safe, even for RUN_EPOCH.

While a long request runs the device sends PROGRESS frames with the request's
seq; each one restarts the timeout and the retry count.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import MedyateError
from . import spec
from .framing import FrameError, FrameReader, encode_frame

try:  # pyserial's exception, if pyserial is there
    from serial import SerialException as _SerialException
except Exception:  # pragma: no cover
    class _SerialException(Exception):
        pass

_PORT_ERRORS = (OSError, _SerialException)


class ProtocolError(MedyateError):
    """The link failed: no valid answer within the retries, or a version mismatch."""


class LinkTimeout(ProtocolError):
    pass


class DeviceError(ProtocolError):
    """The device answered with an ERROR frame."""

    def __init__(self, code: int, request: int, text: str):
        self.code, self.request, self.text = code, request, text
        self.name = spec.ERR_NAME.get(code, str(code))
        req = spec.MSG_NAME.get(request, f"0x{request:02X}")
        super().__init__(f"device rejected {req}: {self.name} ({code}): {text}")


@dataclass
class LinkCounters:
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    naks: int = 0
    corrupt: int = 0
    stale: int = 0
    reconnects: int = 0
    progress: int = 0


class Link:
    """Frames over any pyserial-like port (read/write/timeout/in_waiting).

    port       the open port
    timeout    seconds to wait for an answer (or the next PROGRESS)
    retries    resends after the first try before giving up
    reconnect  callable returning a freshly opened port, used when the port
               raises (unplugged USB, dropped socket); None: errors propagate
    on_progress  called with the PROGRESS fields (dict) of the running request
    """

    POLL = 0.02  # read granularity: how late a deadline may be noticed

    def __init__(self, port, *, timeout: float = 2.0, retries: int = 5,
                 reconnect: Callable[[], object] | None = None,
                 on_progress: Callable[[dict], None] | None = None,
                 seq: int | None = None):
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.reconnect_fn = reconnect
        self.on_progress = on_progress
        self.counters = LinkCounters()
        self._reader = FrameReader()
        self._alive = False
        # A random first seq: a new host process must not collide with the
        # seq of the last request an already running device executed.
        self._seq = random.randrange(0, 0xFFFE) if seq is None else seq
        self._setup_port()

    def _setup_port(self):
        try:
            self.port.timeout = self.POLL
        except Exception:
            pass

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        if self._seq == spec.NAK_SEQ:
            self._seq = 0
        return self._seq

    # ------------------------------------------------------------ port I/O
    def _reconnect(self, err: Exception) -> None:
        if self.reconnect_fn is None:
            raise ProtocolError(f"serial link failed: {err}") from err
        try:
            self.port.close()
        except Exception:
            pass
        self.counters.reconnects += 1
        self.port = self.reconnect_fn()
        self._setup_port()
        self._reader.reset()

    def _read_frames(self, wait: float):
        """Frames (or FrameErrors) that arrive within about `wait` seconds."""
        end = time.monotonic() + max(0.0, wait)
        while True:
            n = self.port.in_waiting
            data = self.port.read(max(1, min(n, 65536)))
            frames = self._reader.feed(data) if data else []
            if frames or time.monotonic() >= end:
                return frames

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests of malformed frames)."""
        self.port.write(data)

    def receive(self, wait: float):
        """Whatever frames arrive within `wait` seconds (tests)."""
        return self._read_frames(wait)

    # ------------------------------------------------------------ request
    def request(self, ftype: int | str, payload: bytes = b"", timeout: float | None = None,
                *, retries: int | None = None, raise_errors: bool = True) -> tuple[int, bytes]:
        """Send one request; return the (type, payload) of its answer.

        An ERROR answer raises DeviceError (or is returned if raise_errors is
        False). Raises LinkTimeout after `retries` resends without an answer."""
        if isinstance(ftype, str):
            ftype = spec.MSG[ftype]
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        seq = self._next_seq()
        wire = encode_frame(ftype, seq, payload)
        self.counters.requests += 1
        failures = 0
        last = "no answer"
        while True:
            self._alive = False
            try:
                self.port.write(wire)
                got = self._await(seq, timeout)
            except _PORT_ERRORS as e:
                last = f"port error: {e}"
                got = None
                try:
                    self._reconnect(e)
                except ProtocolError:
                    raise
                except _PORT_ERRORS as e2:  # the port is not back yet
                    last = f"reconnect failed: {e2}"
                    time.sleep(min(0.5, timeout))
            if isinstance(got, tuple):
                rtype, rpayload = got
                if rtype == spec.MSG["ERROR"] and raise_errors:
                    e = spec.LAYOUT["ERROR"].unpack(rpayload)
                    raise DeviceError(e["code"], e["request"], b"".join(e["text"]).decode(errors="replace"))
                return rtype, rpayload
            if isinstance(got, str):
                last = got
            # PROGRESS for this request means the device has it and is working:
            # only failures in a row count against the retries.
            failures = 1 if self._alive else failures + 1
            if failures > retries:
                raise LinkTimeout(f"{spec.MSG_NAME.get(ftype, ftype)}: no valid answer after "
                                  f"{retries} retries ({last})")
            self.counters.retries += 1

    def _await(self, seq: int, timeout: float):
        """The answer to `seq` as (type, payload), or a string saying why this
        try failed (then the caller resends)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.counters.timeouts += 1
                return "timeout"
            for f in self._read_frames(min(left, 0.25)):
                if isinstance(f, FrameError):
                    # Most likely our answer, damaged: ask again now rather
                    # than after the timeout (a repeat is answered from cache).
                    self.counters.corrupt += 1
                    return f"corrupt frame ({f})"
                if f.type == spec.MSG["ERROR"] and f.seq == spec.NAK_SEQ:
                    self.counters.naks += 1
                    return "device NAK (request damaged on the way)"
                if f.version != spec.PROTOCOL_VERSION:
                    raise ProtocolError(f"device speaks protocol version {f.version}, "
                                        f"host {spec.PROTOCOL_VERSION}")
                if f.seq != seq:
                    self.counters.stale += 1   # answer to an earlier try
                    continue
                if f.type == spec.MSG["PROGRESS"]:
                    self.counters.progress += 1
                    self._alive = True
                    deadline = time.monotonic() + timeout
                    if self.on_progress is not None:
                        try:
                            self.on_progress(spec.LAYOUT["PROGRESS"].unpack(f.payload))
                        except ValueError:
                            pass
                    continue
                return f.type, f.payload

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:
            pass
