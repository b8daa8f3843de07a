"""Link behaviour against a scripted in-process device (no C build needed)."""
import pytest

from medyate.protocol import Link, LinkTimeout, ProtocolError, spec
from medyate.protocol.framing import FrameReader, encode_frame


class ScriptedPort:
    """Answers each request frame with whatever `script(frame, n)` returns
    (a list of wire chunks), n = how many frames it has seen."""

    def __init__(self, script):
        self.script, self.reader, self.out, self.seen = script, FrameReader(), bytearray(), []
        self.timeout = 0.01

    def write(self, data):
        for f in self.reader.feed(bytes(data)):
            self.seen.append(f)
            for chunk in self.script(f, len(self.seen)):
                self.out += chunk
        return len(data)

    @property
    def in_waiting(self):
        return len(self.out)

    def read(self, n=1):
        data = bytes(self.out[:n])
        del self.out[:n]
        return data

    def close(self):
        pass


def pong(f, payload=b"pong"):
    return encode_frame(spec.MSG["PONG"], f.seq, payload)


def test_stale_answers_and_corruption_then_success():
    def script(f, n):
        if n == 1:   # a stale answer, then a corrupt one: resend at once
            return [encode_frame(spec.MSG["PONG"], (f.seq - 1) & 0xFFFF, b"old"),
                    b"\0\x05garbage\0"]
        return [pong(f)]
    port = ScriptedPort(script)
    link = Link(port, timeout=0.2, retries=3)
    assert link.request("PING", b"") == (spec.MSG["PONG"], b"pong")
    assert len(port.seen) == 2 and port.seen[0].seq == port.seen[1].seq
    assert port.seen[0].payload == port.seen[1].payload
    assert link.counters.stale == 1 and link.counters.corrupt == 1


def test_progress_keeps_request_alive():
    def script(f, n):
        if n < 6:     # five tries that each get progress and then a corrupt frame
            return [encode_frame(spec.MSG["PROGRESS"], f.seq, spec.LAYOUT["PROGRESS"].pack(
                request=1, pad=0, pad2=0, done=n, total=9, loss_sum=0.0, correct=0)), b"\0\x07xx\0"]
        return [pong(f)]
    got = []
    link = Link(ScriptedPort(script), timeout=0.2, retries=1, on_progress=got.append)
    assert link.request("PING")[0] == spec.MSG["PONG"]
    assert [g["done"] for g in got] == [1, 2, 3, 4, 5]


def test_nak_triggers_resend_and_retries_run_out():
    def script(f, n):
        return [encode_frame(spec.MSG["ERROR"], spec.NAK_SEQ, spec.LAYOUT["ERROR"].pack(
            code=spec.ERR["BAD_FRAME"], request=0, pad=0, tail=[]))]
    port = ScriptedPort(script)
    with pytest.raises(LinkTimeout, match="NAK"):
        Link(port, timeout=0.2, retries=4).request("PING")
    assert len(port.seen) == 5


def test_other_protocol_version_is_refused():
    port = ScriptedPort(lambda f, n: [encode_frame(spec.MSG["PONG"], f.seq, b"", version=9)])
    with pytest.raises(ProtocolError, match="version 9"):
        Link(port, timeout=0.2).request("PING")


def test_seq_increments_and_skips_nak_seq():
    port = ScriptedPort(lambda f, n: [pong(f)])
    link = Link(port, seq=0xFFFD)
    for _ in range(3):
        link.request("PING")
    assert [f.seq for f in port.seen] == [0xFFFE, 0x0000, 0x0001]
