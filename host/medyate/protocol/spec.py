"""The serial protocol, described once.

Everything both sides must agree on lives here: version, frame layout, limits,
message type codes, error codes and the byte layout of every payload. The host
packs and unpacks payloads with these layouts; `python -m medyate.protocol.gen`
turns the same tables into firmware/src/device/mdy_protocol.h (constants and
field offsets), so the device can never drift from the host. docs/PROTOCOL.md
explains the semantics.

All integers and floats are little-endian; field formats are `struct` codes.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

# Bump on any change to a layout, code or semantics below. The version byte is in
# every frame header: a device answers a frame of another version with
# ERROR(BAD_VERSION) and a host refuses answers of another version, so every
# message is versioned through it. 2: SAMPLE_CHUNK, and TRAIN_STREAM / FORWARD
# take the end of a staged sample (a sample larger than one frame). 3: TRAIN_STREAM
# carries the sample's position in its epoch (the device's runtime decides
# mini-batch ends and SGD steps, as in RUN_EPOCH); STATS and EVAL_R count
# non-finite losses and gradients. 4: TRAIN_STREAM_S8, SAMPLE_CHUNK_S8 and
# FORWARD_S8 carry an int8 model's input codes (1 byte per element, used as
# they are), INFO_R flags bit 1 says the model input is int8. 5: an epoch's
# start (RUN_EPOCH without KEEP_STATS, TRAIN_STREAM index 0, which now carries
# the epoch's seed) restarts the int8 stochastic rounding from the model hash
# and that seed (mdy_seed_rounding).
PROTOCOL_VERSION = 5

# --------------------------------------------------------------- frame
HEADER_FORMAT = "<BBHH"           # version, type, seq, payload length
HEADER_SIZE = struct.calcsize(HEADER_FORMAT)
CRC_SIZE = 4                      # CRC-32 (IEEE 802.3, zlib.crc32) of header+payload
# Largest payload either side sends or accepts. The device holds one received and
# one answer frame in static RAM, so this sets most of its protocol RAM.
MAX_PAYLOAD = 2048
FRAME_MAX = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
# COBS adds one byte per 254 plus one; the delimiter is 0x00 on both ends.
ENCODED_MAX = FRAME_MAX + FRAME_MAX // 254 + 2
# The device shuffles an epoch in place of its (then idle) receive and answer
# buffers: uint16 sample indices, so one RUN_EPOCH visits at most this many samples.
MAX_EPOCH_SAMPLES = 2048
# A PROGRESS frame every this many samples of RUN_EPOCH / EVALUATE.
PROGRESS_EVERY = 16
# Longest text in an ERROR payload.
ERROR_TEXT_MAX = 48
# Fixed-size strings in INFO (NUL-padded).
NAME_LEN = 24
# seq value of a device NAK: it answers a frame it could not trust (bad CRC or
# COBS), so the request's own seq is unknown.
NAK_SEQ = 0xFFFF

# --------------------------------------------------------------- codes
# Requests (host -> device) are < 0x80; answers (device -> host) have bit 7 set.
MSG = {
    "PING": 0x01,
    "INFO": 0x02,
    "LAYERS": 0x03,
    "SEL_BEGIN": 0x04,
    "SEL_CHUNK": 0x05,
    "SEL_COMMIT": 0x06,
    "RUN_EPOCH": 0x07,
    "GET_STATS": 0x08,
    "TRAIN_STREAM": 0x09,
    "EVALUATE": 0x0A,
    "READ_WEIGHTS": 0x0B,
    "WRITE_WEIGHTS": 0x0C,
    "FORWARD": 0x0D,
    "SHUTDOWN": 0x0E,
    "SAMPLE_CHUNK": 0x0F,
    "TRAIN_STREAM_S8": 0x10,
    "SAMPLE_CHUNK_S8": 0x11,
    "FORWARD_S8": 0x12,
    # answers
    "OK": 0x80,
    "PONG": 0x81,
    "INFO_R": 0x82,
    "LAYERS_R": 0x83,
    "STATS": 0x87,
    "EVAL_R": 0x8A,
    "WEIGHTS": 0x8B,
    "LOGITS": 0x8D,
    "PROGRESS": 0xF0,
    "ERROR": 0xFF,
}
MSG_NAME = {v: k for k, v in MSG.items()}

# Request -> the answer type it gets when it succeeds (any request may get ERROR).
ANSWER = {
    "PING": "PONG", "INFO": "INFO_R", "LAYERS": "LAYERS_R",
    "SEL_BEGIN": "OK", "SEL_CHUNK": "OK", "SEL_COMMIT": "OK",
    "RUN_EPOCH": "STATS", "GET_STATS": "STATS", "TRAIN_STREAM": "STATS",
    "EVALUATE": "EVAL_R", "READ_WEIGHTS": "WEIGHTS", "WRITE_WEIGHTS": "OK",
    "FORWARD": "LOGITS", "SHUTDOWN": "OK", "SAMPLE_CHUNK": "OK",
    "TRAIN_STREAM_S8": "STATS", "SAMPLE_CHUNK_S8": "OK", "FORWARD_S8": "LOGITS",
}

# ERROR codes. Negative codes are the engine's own mdy_status values, passed
# through unchanged (medyate.h); positive codes are the protocol's.
ERR = {
    # mdy_status
    "MDY_ERR_ARG": -1,
    "MDY_ERR_RANGE": -2,
    "MDY_ERR_ORDER": -3,
    "MDY_ERR_BUDGET": -4,
    "MDY_ERR_UNSUPPORTED": -5,
    "MDY_ERR_LABEL": -6,
    # protocol
    "BAD_FRAME": 1,        # NAK: CRC, COBS or length check failed (seq = NAK_SEQ)
    "BAD_VERSION": 2,      # frame of another protocol version
    "UNKNOWN_TYPE": 3,     # no such request
    "BAD_LENGTH": 4,       # payload length does not match the message
    "BAD_FIELD": 5,        # a field is out of its range (text names it)
    "NO_DATASET": 6,       # no (valid) dataset image in device memory
    "DATASET_SHAPE": 7,    # the image does not match the model input / classes
    "BAD_STATE": 8,        # e.g. SEL_CHUNK / SEL_COMMIT without SEL_BEGIN, incomplete sample
    "TOO_LARGE": 9,        # an answer (the logits) does not fit one frame
}
ERR_NAME = {v: k for k, v in ERR.items()}

# Flags of RUN_EPOCH.
EPOCH_KEEP_STATS = 0x01   # do not reset loss/accuracy/channel statistics first

# Flags of INFO_R.
INFO_DATASET = 0x01       # a valid dataset image is present
INFO_INPUT_S8 = 0x02      # the model input is int8: samples may come as its codes (*_S8)

SPLIT_TRAIN = 0
SPLIT_TEST = 1


# --------------------------------------------------------------- layouts
@dataclass(frozen=True)
class Layout:
    """A payload: fixed fields, then optionally an array of `tail` items up to
    the end of the payload (the count follows from the payload length)."""
    name: str
    fields: tuple[tuple[str, str], ...]
    tail: tuple[str, str] | None = None
    doc: str = ""
    _struct: struct.Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_struct", struct.Struct("<" + "".join(f for _, f in self.fields)))

    @property
    def size(self) -> int:
        """Bytes of the fixed part."""
        return self._struct.size

    @property
    def tail_size(self) -> int:
        return struct.calcsize("<" + self.tail[1]) if self.tail else 0

    @property
    def tail_fields(self) -> int:
        """Values per tail item (the tail is a flat list of values)."""
        return len(struct.unpack("<" + self.tail[1], bytes(self.tail_size))) if self.tail else 0

    def offsets(self) -> list[tuple[str, int, int]]:
        """(field, byte offset, byte size) of every fixed field."""
        out, off = [], 0
        for name, fmt in self.fields:
            n = struct.calcsize("<" + fmt)
            out.append((name, off, n))
            off += n
        return out

    def max_tail(self, max_payload: int = MAX_PAYLOAD) -> int:
        return (max_payload - self.size) // self.tail_size if self.tail else 0

    def pack(self, tail=(), **values) -> bytes:
        vals = []
        for name, fmt in self.fields:
            v = values.pop(name)
            if fmt.endswith("s") and isinstance(v, str):
                v = v.encode()
            vals.append(v)
        if values:
            raise TypeError(f"{self.name}: unknown fields {sorted(values)}")
        out = self._struct.pack(*vals)
        if self.tail:
            tail = list(tail)
            per = self.tail_fields
            if len(tail) % per:
                raise ValueError(f"{self.name}: tail of {len(tail)} values, items have {per}")
            out += struct.pack("<" + self.tail[1] * (len(tail) // per), *tail)
        elif len(tail):
            raise TypeError(f"{self.name} has no tail")
        return out

    def unpack(self, payload: bytes) -> dict:
        """Fields as a dict; the tail (if any) as a list under its name."""
        if len(payload) < self.size:
            raise ValueError(f"{self.name}: {len(payload)} bytes, need {self.size}")
        vals = self._struct.unpack_from(payload)
        d = {}
        for (name, fmt), v in zip(self.fields, vals):
            if fmt.endswith("s"):
                v = v.rstrip(b"\0").decode(errors="replace")
            d[name] = v
        rest = len(payload) - self.size
        if self.tail:
            if rest % self.tail_size:
                raise ValueError(f"{self.name}: tail of {rest} bytes")
            n = rest // self.tail_size
            d[self.tail[0]] = list(struct.unpack_from("<" + self.tail[1] * n, payload, self.size))
        elif rest:
            raise ValueError(f"{self.name}: {rest} bytes too many")
        return d


def _L(name, fields, tail=None, doc=""):
    return Layout(name, tuple(fields), tail, doc)


# Records inside payloads: one layout each, so both sides take the byte offsets
# of their fields from here (mdy_protocol.h: MDY_<RECORD>_<FIELD>).
# A trainable layer in LAYERS_R: op index, op kind (mdy_op_kind), train_bias,
# input channels, slice_size, map_size, weight elements, bias elements (0: none).
LAYER_ENTRY = _L("LAYER_ENTRY", [
    ("op", "H"), ("kind", "B"), ("train_bias", "B"), ("channels", "i"),
    ("slice_size", "i"), ("map_size", "i"), ("weight_count", "i"), ("bias_count", "i"),
], doc="one trainable layer of LAYERS_R")
RECORDS = {"LAYER_ENTRY": LAYER_ENTRY}

# Payload of each message type (requests and answers). Fields are ordered so
# float arrays start 4-byte aligned: the device trains directly on a sample that
# sits in its receive buffer.
LAYOUT = {
    "PING": _L("PING", [], ("data", "B"), "any bytes, echoed"),
    "PONG": _L("PONG", [], ("data", "B")),
    "INFO": _L("INFO", []),
    "INFO_R": _L("INFO_R", [
        ("engine_version", "H"), ("protocol_version", "B"), ("flags", "B"),
        ("model_hash", "I"), ("arena_size", "I"), ("pool_size", "I"),
        ("max_selected", "I"), ("classes", "i"),
        ("in_h", "i"), ("in_w", "i"), ("in_c", "i"),
        ("n_layers", "H"), ("n_ops", "H"), ("max_payload", "H"), ("max_epoch", "H"),
        ("stack_size", "I"), ("cycles_hz", "I"),
        ("n_train", "I"), ("n_test", "I"),
        ("n_selected", "I"),
        ("board", f"{NAME_LEN}s"), ("model", f"{NAME_LEN}s"),
    ], doc="flags bit 0: a valid dataset image is present; bit 1: the model input is int8 "
           "(the *_S8 requests and an int8 dataset image carry its codes)"),
    "LAYERS": _L("LAYERS", [("offset", "H"), ("count", "H")]),
    "LAYERS_R": _L("LAYERS_R", [("offset", "H"), ("count", "H")],
                   ("entries", "".join(f for _, f in LAYER_ENTRY.fields)),
                   "entries: LAYER_ENTRY records"),
    "SEL_BEGIN": _L("SEL_BEGIN", [("count", "I")]),
    "SEL_CHUNK": _L("SEL_CHUNK", [("offset", "I")], ("pairs", "HH"), "pair: layer, channel"),
    "SEL_COMMIT": _L("SEL_COMMIT", [("count", "I")]),
    "OK": _L("OK", []),
    "RUN_EPOCH": _L("RUN_EPOCH", [
        ("split", "B"), ("flags", "B"), ("batch", "H"),
        ("start", "I"), ("count", "I"), ("lr", "f"), ("seed", "I"),
        ("page", "H"), ("pad", "H"),
    ], doc="page: most channel statistics to put in the STATS answer; seed: the epoch's "
           "shuffle, and without KEEP_STATS the restart of the int8 rounding"),
    "GET_STATS": _L("GET_STATS", [("offset", "I"), ("count", "I")]),
    "STATS": _L("STATS", [
        ("loss_sum", "f"), ("correct", "I"), ("seen", "I"), ("steps", "I"),
        ("cycles_forward", "Q"), ("cycles_backward", "Q"), ("cycles_update", "Q"),
        ("cycles_total", "Q"),
        ("stack_high_water", "I"), ("n_selected", "I"), ("offset", "I"),
        ("nonfinite", "I"),
    ], ("channel_stats", "f"), "nonfinite: samples with a NaN/inf loss plus SGD steps with a "
                               "NaN/inf gradient since the statistics were reset"),
    "TRAIN_STREAM": _L("TRAIN_STREAM", [
        ("batch", "H"), ("pad", "H"), ("index", "I"), ("count", "I"), ("label", "i"),
        ("lr", "f"), ("seed", "I"),
    ], ("x", "f"), "sample number index (0 resets the statistics and restarts the rounding "
                   "from seed) of a streamed epoch of "
                   "count samples in mini-batches of batch; x: the sample's last len(x) "
                   "floats, float32 NHWC; the floats before them were staged by SAMPLE_CHUNK"),
    "EVALUATE": _L("EVALUATE", [
        ("split", "B"), ("pad", "B"), ("pad2", "H"), ("start", "I"), ("count", "I"),
    ]),
    "EVAL_R": _L("EVAL_R", [
        ("loss_sum", "f"), ("correct", "I"), ("count", "I"), ("nonfinite", "I"),
        ("cycles", "Q"),
    ], doc="nonfinite: samples with a NaN/inf loss"),
    "READ_WEIGHTS": _L("READ_WEIGHTS", [
        ("layer", "H"), ("which", "B"), ("pad", "B"), ("offset", "I"), ("count", "I"),
    ], doc="which: 0 weight, 1 bias"),
    "WEIGHTS": _L("WEIGHTS", [("offset", "I")], ("values", "f")),
    "WRITE_WEIGHTS": _L("WRITE_WEIGHTS", [
        ("layer", "H"), ("which", "B"), ("pad", "B"), ("offset", "I"),
    ], ("values", "f")),
    "FORWARD": _L("FORWARD", [], ("x", "f"), "x: as in TRAIN_STREAM"),
    "LOGITS": _L("LOGITS", [("argmax", "i")], ("logits", "f")),
    "SHUTDOWN": _L("SHUTDOWN", [("code", "i")]),
    "SAMPLE_CHUNK": _L("SAMPLE_CHUNK", [("offset", "I")], ("x", "f"),
                       "offset: in floats, 0 starts a sample, else the number staged so far; "
                       "x: the sample's floats offset.., float32 NHWC"),
    # The same three with the int8 codes of an int8 model's input (quantized
    # with its scale and zero point, as mdy_input_from_f32 does): a quarter of
    # the bytes, used as they are.
    "TRAIN_STREAM_S8": _L("TRAIN_STREAM_S8", [
        ("batch", "H"), ("pad", "H"), ("index", "I"), ("count", "I"), ("label", "i"),
        ("lr", "f"), ("seed", "I"),
    ], ("x", "b"), "as TRAIN_STREAM; x: the sample's last len(x) int8 codes, NHWC"),
    "SAMPLE_CHUNK_S8": _L("SAMPLE_CHUNK_S8", [("offset", "I")], ("x", "b"),
                          "as SAMPLE_CHUNK; x: int8 codes"),
    "FORWARD_S8": _L("FORWARD_S8", [], ("x", "b"), "x: as in TRAIN_STREAM_S8"),
    "PROGRESS": _L("PROGRESS", [
        ("request", "B"), ("pad", "B"), ("pad2", "H"),
        ("done", "I"), ("total", "I"), ("loss_sum", "f"), ("correct", "I"),
    ]),
    "ERROR": _L("ERROR", [("code", "h"), ("request", "B"), ("pad", "B")], ("text", "c"),
                f"text: ASCII, at most {ERROR_TEXT_MAX} bytes, not NUL-terminated"),
}
LAYER_ENTRY_SIZE = LAYER_ENTRY.size
assert LAYOUT["LAYERS_R"].tail_size == LAYER_ENTRY_SIZE

# --------------------------------------------------------------- dataset image
DATASET_MAGIC = b"MDYD"
# 2: data_crc (an image cut short or overwritten is refused). 3: the samples'
# element type (float32, or an int8 model's input codes with the scale and
# zero point they were quantized with).
DATASET_VERSION = 3
DATASET_F32 = 0
DATASET_S8 = 1
DATASET_ALIGN = 16
DATASET_HEADER = _L("DATASET_HEADER", [
    ("magic", "4s"), ("version", "H"), ("header_size", "H"),
    ("n_train", "I"), ("n_test", "I"),
    ("h", "H"), ("w", "H"), ("c", "H"), ("classes", "H"),
    ("x_train", "I"), ("y_train", "I"), ("x_test", "I"), ("y_test", "I"),
    ("total_size", "I"), ("data_crc", "I"), ("dtype", "B"), ("pad", "B"), ("zero", "h"),
    ("scale", "f"), ("reserved", "I"), ("header_crc", "I"),
], doc="data_crc: CRC-32 of bytes header_size .. total_size; dtype: 0 float32 samples, "
       "1 int8 codes quantized with (scale, zero), which must be the model input's; "
       "header_crc: CRC-32 of the header bytes before it")
DATASET_HEADER_SIZE = DATASET_HEADER.size   # 64

assert HEADER_SIZE == 6
assert DATASET_HEADER_SIZE == 64
assert all(k in LAYOUT for k in MSG), "every message has a layout"
assert (2 + FRAME_MAX) * 2 >= 2 * MAX_EPOCH_SAMPLES
