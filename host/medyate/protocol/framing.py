"""Frames on the wire: COBS-encoded, 0x00-delimited.

frame   = header | payload | crc
header  = version u8, type u8, seq u16, payload length u16   (little-endian)
crc     = CRC-32 (IEEE, zlib.crc32) of header and payload, u32 little-endian
on wire = 0x00 | COBS(frame) | 0x00

The leading delimiter ends whatever garbage a noisy line left in the
receiver's buffer, so a good frame is never glued to a broken one.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from . import spec


class FrameError(ValueError):
    """A frame that must be dropped (bad COBS, length, CRC or header)."""


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the output has no 0x00 byte."""
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    if n == 0:
        raise FrameError("empty COBS block")
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("0x00 inside a COBS frame")
        end = i + code
        if end > n:
            raise FrameError("COBS block runs past the end")
        block = data[i + 1:end]
        if 0 in block:
            raise FrameError("0x00 inside a COBS frame")
        out += block
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes
    version: int = spec.PROTOCOL_VERSION


def pack_frame(ftype: int, seq: int, payload: bytes = b"",
               version: int = spec.PROTOCOL_VERSION) -> bytes:
    """Header + payload + CRC, not yet COBS-encoded."""
    if len(payload) > spec.MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes > {spec.MAX_PAYLOAD}")
    raw = struct.pack(spec.HEADER_FORMAT, version, ftype, seq & 0xFFFF, len(payload)) + bytes(payload)
    return raw + struct.pack("<I", crc32(raw))


def encode_frame(ftype: int, seq: int, payload: bytes = b"",
                 version: int = spec.PROTOCOL_VERSION) -> bytes:
    """The bytes to write on the wire, delimiters included."""
    return b"\0" + cobs_encode(pack_frame(ftype, seq, payload, version)) + b"\0"


def unpack_frame(raw: bytes) -> Frame:
    """Check length and CRC of a decoded frame. The version is returned, not
    checked: the caller decides what another version means."""
    if len(raw) < spec.HEADER_SIZE + spec.CRC_SIZE:
        raise FrameError(f"frame of {len(raw)} bytes is too short")
    if len(raw) > spec.FRAME_MAX:
        raise FrameError(f"frame of {len(raw)} bytes is too long")
    body, (crc,) = raw[:-4], struct.unpack("<I", raw[-4:])
    if crc32(body) != crc:
        raise FrameError("CRC mismatch")
    version, ftype, seq, n = struct.unpack_from(spec.HEADER_FORMAT, body)
    if n != len(body) - spec.HEADER_SIZE:
        raise FrameError(f"length field {n} != payload of {len(body) - spec.HEADER_SIZE} bytes")
    return Frame(ftype, seq, bytes(body[spec.HEADER_SIZE:]), version)


def decode_frame(encoded: bytes) -> Frame:
    """One COBS block (without delimiters) to a checked Frame."""
    if len(encoded) > spec.ENCODED_MAX:
        raise FrameError("encoded frame too long")
    return unpack_frame(cobs_decode(encoded))


class FrameReader:
    """Splits a byte stream at 0x00 into frames; yields Frame or FrameError.

    A block longer than the largest legal frame is dropped as soon as it
    overflows, so a line that never sends 0x00 cannot grow memory."""

    def __init__(self):
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes):
        out = []
        for chunk_end in _split_keep(data):
            part, ended = chunk_end
            if not self._overflow:
                self._buf += part
                if len(self._buf) > spec.ENCODED_MAX:
                    self._overflow = True
                    self._buf.clear()
            if ended:
                if self._overflow:
                    out.append(FrameError("frame too long"))
                elif self._buf:
                    try:
                        out.append(decode_frame(bytes(self._buf)))
                    except FrameError as e:
                        out.append(e)
                self._buf.clear()
                self._overflow = False
        return out

    def reset(self):
        self._buf.clear()
        self._overflow = False


def _split_keep(data: bytes):
    """(part, ended_by_delimiter) pieces of data."""
    start = 0
    while True:
        i = data.find(b"\0", start)
        if i < 0:
            if start < len(data):
                yield data[start:], False
            return
        yield data[start:i], True
        start = i + 1
