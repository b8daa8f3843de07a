"""COBS, CRC-32 and frame checks, host side and device side against each other."""
import struct
import subprocess
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from medyate.protocol import spec
from medyate.protocol.framing import (FrameError, FrameReader, cobs_decode, cobs_encode,
                                      crc32, decode_frame, encode_frame, pack_frame, unpack_frame)

# Byte strings rich in the cases COBS cares about: zeros, runs of 254/255.
edge_bytes = st.one_of(
    st.binary(max_size=700),
    st.lists(st.sampled_from([0, 1, 255]), max_size=600).map(bytes),
    st.tuples(st.integers(0, 600), st.integers(0, 3)).map(
        lambda t: b"\x07" * t[0] + b"\x00" * t[1]),
)


@given(edge_bytes)
@settings(max_examples=300, deadline=None)
def test_cobs_round_trip(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(enc) == data


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 508, 509, 1000])
def test_cobs_block_boundaries(n):
    for data in (b"\x01" * n, b"\x01" * n + b"\x00", b"\x00" + b"\x01" * n, b"\x00" * n):
        assert cobs_decode(cobs_encode(data)) == data


def test_cobs_known_vectors():
    # from the COBS paper / Wikipedia
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x00\x00") == b"\x01\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    assert cobs_encode(bytes(range(1, 255))) == b"\xff" + bytes(range(1, 255)) + b"\x01"


@pytest.mark.parametrize("bad", [b"", b"\x05\x01\x02", b"\x03\x00\x01", b"\x02\x01\x00"])
def test_cobs_rejects(bad):
    with pytest.raises(FrameError):
        cobs_decode(bad)


@given(st.binary(max_size=3000))
@settings(max_examples=100, deadline=None)
def test_crc32_is_zlib(data):
    assert crc32(data) == zlib.crc32(data) & 0xFFFFFFFF


@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=spec.MAX_PAYLOAD))
@settings(max_examples=150, deadline=None)
def test_frame_round_trip(ftype, seq, payload):
    wire = encode_frame(ftype, seq, payload)
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    assert len(wire) <= spec.ENCODED_MAX + 2
    f = decode_frame(wire[1:-1])
    assert (f.type, f.seq, f.payload, f.version) == (ftype, seq, payload, spec.PROTOCOL_VERSION)


def test_payload_limit():
    encode_frame(1, 1, bytes(spec.MAX_PAYLOAD))
    with pytest.raises(ValueError):
        encode_frame(1, 1, bytes(spec.MAX_PAYLOAD + 1))


def _malformed():
    good = pack_frame(spec.MSG["INFO"], 7, b"abc")
    out = {
        "bad crc": good[:-1] + bytes([good[-1] ^ 1]),
        "flipped payload bit": good[:7] + bytes([good[7] ^ 0x10]) + good[8:],
        "short": good[:9],
        "empty": b"",
        "len field too big": _recrc(good[:4] + struct.pack("<H", 4) + good[6:-4]),
        "len field too small": _recrc(good[:4] + struct.pack("<H", 2) + good[6:-4]),
        "too long": _recrc(struct.pack("<BBHH", 1, 1, 1, spec.MAX_PAYLOAD + 1) + bytes(spec.MAX_PAYLOAD + 1)),
        "truncated": good[:-2],
    }
    return out


def _recrc(body):
    return body + struct.pack("<I", crc32(body))


@pytest.mark.parametrize("name", list(_malformed()))
def test_unpack_rejects_malformed(name):
    with pytest.raises(FrameError):
        unpack_frame(_malformed()[name])


@given(st.binary(min_size=1, max_size=200), st.integers(0, 10_000))
@settings(max_examples=200, deadline=None)
def test_any_single_byte_corruption_is_caught(payload, where):
    wire = bytearray(encode_frame(3, 9, payload))
    i = 1 + where % (len(wire) - 2)
    wire[i] ^= 0x5A
    frames = FrameReader().feed(bytes(wire))
    good = [f for f in frames if not isinstance(f, FrameError)]
    assert not good or good[0].payload == payload and good[0].type == 3   # never a wrong frame


def test_reader_resyncs_after_garbage():
    r = FrameReader()
    got = r.feed(b"\x13\x37garbage" + encode_frame(5, 1, b"x") + b"\xff" * 5000 + encode_frame(6, 2, b"y"))
    frames = [f for f in got if not isinstance(f, FrameError)]
    assert [(f.type, f.payload) for f in frames] == [(5, b"x"), (6, b"y")]
    assert sum(isinstance(f, FrameError) for f in got) == 2


def test_reader_split_across_reads():
    wire = encode_frame(5, 1, bytes(range(256)) * 3)
    r = FrameReader()
    out = []
    for i in range(0, len(wire), 7):
        out += r.feed(wire[i:i + 7])
    assert len(out) == 1 and out[0].payload == bytes(range(256)) * 3


# ----------------------------------------------------------------- device code
def _run(exe, *args):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("data", [b"", b"a", bytes(range(256)) * 4, b"\x00" * 300])
def test_c_crc_matches(harness_exe, data):
    assert int(_run(harness_exe, "crc", data.hex()), 16) == zlib.crc32(data)


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00" * 5, b"\x01" * 247, b"\x01" * 248,
                                     b"\x01" * 249, bytes(range(256)) * 8, b"\x00\x01" * 1024])
def test_c_encoder_matches(harness_exe, payload):
    wire = _run(harness_exe, "frame", 0x87, 0x1234, payload.hex()).strip()
    assert bytes.fromhex(wire) == encode_frame(0x87, 0x1234, payload)


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
@settings(max_examples=25, deadline=None)
def test_c_decoder_matches(harness_exe, payloads):
    stream = b"".join(encode_frame(1, i, p) for i, p in enumerate(payloads))
    lines = [l for l in _run(harness_exe, "decode", stream.hex()).splitlines() if l != "empty"]
    assert len(lines) == len(payloads)
    for line, p in zip(lines, payloads):
        kind, status, raw = line.split(" ") if line.count(" ") == 2 else (*line.split(" "), "")
        assert (kind, status) == ("frame", "ok")
        assert unpack_frame(bytes.fromhex(raw)).payload == p


def test_c_decoder_rejects(harness_exe):
    good = encode_frame(1, 1, b"hello")
    cases = {
        "cut block": b"\x00\x09\x01\x02\x00",
        "overlong": b"\x00" + b"\x01" * (spec.ENCODED_MAX + 50) + b"\x00",
    }
    for name, stream in cases.items():
        out = _run(harness_exe, "decode", stream.hex()).split()
        assert "bad" in out or "badcrc" in out, name
    bad_crc = bytearray(good)
    bad_crc[-3] ^= 0x01 if bad_crc[-3] not in (0, 1) else 0x02
    out = _run(harness_exe, "decode", bytes(bad_crc).hex())
    assert "badcrc" in out or "bad" in out
    assert "frame ok" in _run(harness_exe, "decode", good.hex())
