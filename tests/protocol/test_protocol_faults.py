"""A noisy, lossy line that also goes away once ends in exactly the same
trained weights as a clean one: retries resend the same frame, and the device
answers a repeat from its cache instead of training again."""
import numpy as np
import pytest
import serial

from medyate.protocol import Device, Link

from protocol_helpers import session


class FaultyPort:
    """Wraps a port: corrupts bytes, drops whole frames (both directions) and,
    once, disconnects (raises like a vanished USB port) until reconnected.
    Besides the random drops, every `drop_every`-th frame (either direction) is
    dropped, so that a run drops frames whatever the byte stream looks like."""

    def __init__(self, inner, rng, p_byte=0.01, p_drop=0.02, disconnect_after=None,
                 drop_every=None):
        self.inner, self.rng = inner, rng
        self.p_byte, self.p_drop = p_byte, p_drop
        self.drop_every, self.frames = drop_every, 0
        self.disconnect_after = disconnect_after   # writes until the line goes away
        self.writes = 0
        self.dead = False
        self._partial = bytearray()     # device bytes up to the next delimiter
        self._ready = bytearray()
        self.injected = {"corrupted": 0, "dropped": 0}

    @property
    def timeout(self):
        return self.inner.timeout

    @timeout.setter
    def timeout(self, v):
        self.inner.timeout = v

    def _check(self):
        if self.dead:
            raise serial.SerialException("device disconnected")

    def _mangle(self, data: bytes) -> bytes:
        out = bytearray(data)
        hits = np.nonzero(self.rng.random(len(out)) < self.p_byte)[0]
        for i in hits:
            out[i] ^= int(self.rng.integers(1, 256))
        self.injected["corrupted"] += len(hits)
        return bytes(out)

    def _drop(self) -> bool:
        self.frames += 1
        scheduled = self.drop_every is not None and self.frames % self.drop_every == 0
        return bool(self.rng.random() < self.p_drop) or scheduled

    def write(self, data):
        self._check()
        self.writes += 1
        if self.disconnect_after is not None and self.writes > self.disconnect_after:
            # the request makes it out, then the line goes away: its answer is lost
            self.inner.write(data)
            self.dead = True
            self.disconnect_after = None
            raise serial.SerialException("device disconnected")
        if self._drop():
            self.injected["dropped"] += 1
            return len(data)
        self.inner.write(self._mangle(data))
        return len(data)

    def _pull(self):
        n = self.inner.in_waiting
        data = self.inner.read(max(1, n)) if n or not self._ready else b""
        for b in data:
            self._partial.append(b)
            if b == 0:       # a frame (or the gap before one) is complete
                seg = bytes(self._partial)
                self._partial.clear()
                if len(seg) > 1 and self._drop():
                    self.injected["dropped"] += 1
                    continue
                self._ready += self._mangle(seg[:-1]) + b"\0"

    @property
    def in_waiting(self):
        self._check()
        self._pull()
        return len(self._ready)

    def read(self, size=1):
        self._check()
        if not self._ready:
            self._pull()
        out = bytes(self._ready[:size])
        del self._ready[:size]
        return out

    def reset_input_buffer(self):
        self._ready.clear()
        self._partial.clear()
        self.inner.reset_input_buffer()

    def close(self):
        pass


def test_faulty_link_gives_identical_training(device_process):
    clean = session(device_process().device(timeout=2.0))

    proc = device_process()
    rng = np.random.default_rng(7)
    ports = []

    def reconnect():
        p = FaultyPort(proc.port(), rng, drop_every=40)
        p.inner.reset_input_buffer()     # bytes in flight during the outage are lost
        ports.append(p)
        return p

    first = FaultyPort(proc.port(), rng, disconnect_after=9, drop_every=40)
    ports.append(first)
    link = Link(first, timeout=0.25, retries=40, reconnect=reconnect)
    # small frames: at 1 % corrupted bytes a 2 KiB frame would almost never arrive intact
    noisy = session(Device(link, max_payload=96))

    assert noisy["layers"] == clean["layers"]
    assert noisy["stats"] == clean["stats"]
    assert noisy["eval"] == clean["eval"]
    for (wa, ba), (wb, bb) in zip(clean["weights"], noisy["weights"]):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)

    c = link.counters
    injected = {k: sum(p.injected[k] for p in ports) for k in ("corrupted", "dropped")}
    assert c.reconnects == 1 and len(ports) == 2
    assert injected["corrupted"] > 20 and injected["dropped"] > 2, injected
    assert c.retries > 5 and (c.corrupt + c.naks) > 5 and c.timeouts > 0, c


def test_link_gives_up_without_answer(device_process):
    from medyate.protocol import LinkTimeout
    proc = device_process()
    port = FaultyPort(proc.port(), np.random.default_rng(0), p_byte=0.0, p_drop=1.0)
    link = Link(port, timeout=0.05, retries=2)
    with pytest.raises(LinkTimeout):
        Device(link).ping(b"x")
    assert link.counters.retries == 2


def test_disconnect_without_reconnect_raises(device_process):
    from medyate.protocol import ProtocolError
    proc = device_process()
    port = FaultyPort(proc.port(), np.random.default_rng(0), p_byte=0.0, p_drop=0.0,
                      disconnect_after=0)
    with pytest.raises(ProtocolError, match="serial link failed"):
        Device(Link(port, timeout=0.2)).ping(b"x")
