"""Typed requests to a device running the medyate firmware."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import spec
from .link import DeviceError, Link, ProtocolError
from .order import epoch_parts, part_seed

L = spec.LAYOUT


@dataclass
class LayerInfo:
    index: int
    op: int
    kind: int                 # mdy_op_kind
    train_bias: bool
    channels: int
    slice_size: int
    map_size: int
    weight_count: int
    bias_count: int


@dataclass
class DeviceInfo:
    engine_version: int
    protocol_version: int
    model_hash: int
    arena_size: int
    pool_size: int
    max_selected: int
    classes: int
    input_shape: tuple[int, int, int]   # h, w, c (NHWC)
    n_layers: int
    n_ops: int
    max_payload: int
    max_epoch: int
    stack_size: int
    cycles_hz: int
    has_dataset: bool
    input_s8: bool                      # the model input is int8 (samples may be codes)
    n_train: int
    n_test: int
    n_selected: int
    board: str
    model: str
    layers: list[LayerInfo] = field(default_factory=list)


@dataclass
class Stats:
    loss_sum: float
    correct: int
    seen: int
    steps: int
    cycles_forward: int       # mdy_train_forward (forward that saves backward state)
    cycles_backward: int      # mdy_train_backward (loss + sparse backward)
    cycles_update: int        # mdy_sgd_step
    cycles_total: int
    stack_high_water: int
    n_selected: int
    channel_stats: np.ndarray  # float32 [n_selected], in selection order
    nonfinite: int = 0         # NaN/inf losses + SGD steps with a NaN/inf gradient

    @property
    def loss(self) -> float:
        return self.loss_sum / self.seen if self.seen else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.seen if self.seen else float("nan")


@dataclass
class EvalResult:
    loss_sum: float
    correct: int
    count: int
    cycles: int
    nonfinite: int = 0        # samples with a NaN/inf loss

    @property
    def loss(self) -> float:
        return self.loss_sum / self.count if self.count else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else float("nan")


_SPLIT = {"train": spec.SPLIT_TRAIN, "test": spec.SPLIT_TEST, 0: 0, 1: 1}
_WHICH = {"weight": 0, "bias": 1, 0: 0, 1: 1}


class Device:
    """A device behind a Link.

    max_payload limits the size of the frames this side asks for and sends
    (weights, statistics, selection chunks): smaller frames survive a noisy
    line better. None: the device's own limit."""

    def __init__(self, link: Link, max_payload: int | None = None):
        self.link = link
        self._limit = max_payload
        self._info: DeviceInfo | None = None

    def _req(self, name: str, payload: bytes = b"", **kw) -> dict:
        rtype, rpayload = self.link.request(name, payload, **kw)
        want = spec.ANSWER[name]
        if rtype != spec.MSG[want]:
            raise ProtocolError(f"{name}: expected {want}, got {spec.MSG_NAME.get(rtype, rtype)}")
        try:
            return L[want].unpack(rpayload)
        except ValueError as e:
            raise ProtocolError(f"{name}: malformed {want}: {e}") from e

    @property
    def max_payload(self) -> int:
        dev = self._info.max_payload if self._info else spec.MAX_PAYLOAD
        return min(dev, self._limit) if self._limit else dev

    # ------------------------------------------------------------ requests
    def ping(self, data: bytes = b"") -> bytes:
        return bytes(self._req("PING", L["PING"].pack(tail=data))["data"])

    def info(self, refresh: bool = False) -> DeviceInfo:
        """Device, model and board facts, with the whole layer table."""
        if self._info is not None and not refresh:
            return self._info
        d = self._req("INFO")
        inf = DeviceInfo(
            engine_version=d["engine_version"], protocol_version=d["protocol_version"],
            model_hash=d["model_hash"], arena_size=d["arena_size"], pool_size=d["pool_size"],
            max_selected=d["max_selected"], classes=d["classes"],
            input_shape=(d["in_h"], d["in_w"], d["in_c"]), n_layers=d["n_layers"],
            n_ops=d["n_ops"], max_payload=d["max_payload"], max_epoch=d["max_epoch"],
            stack_size=d["stack_size"], cycles_hz=d["cycles_hz"],
            has_dataset=bool(d["flags"] & spec.INFO_DATASET),
            input_s8=bool(d["flags"] & spec.INFO_INPUT_S8), n_train=d["n_train"], n_test=d["n_test"],
            n_selected=d["n_selected"], board=d["board"], model=d["model"])
        self._info = inf
        per = max(1, L["LAYERS_R"].max_tail(self.max_payload))
        off = 0
        while off < inf.n_layers:
            r = self._req("LAYERS", L["LAYERS"].pack(offset=off, count=min(per, inf.n_layers - off)))
            if r["offset"] != off or not r["entries"]:
                raise ProtocolError(f"LAYERS: asked for offset {off}, got {r['offset']}")
            ent = r["entries"]
            names = [n for n, _ in spec.LAYER_ENTRY.fields]
            per_entry = len(names)
            for k in range(0, len(ent), per_entry):
                e = dict(zip(names, ent[k:k + per_entry]))
                e["train_bias"] = bool(e["train_bias"])
                inf.layers.append(LayerInfo(off + k // per_entry, **e))
            off += len(ent) // per_entry
        return inf

    def set_selection(self, pairs) -> None:
        """Install a selection: (layer, channel) pairs, strictly increasing.
        The device validates it (mdy_set_selection); a bad one raises
        DeviceError and leaves the previous selection installed."""
        flat = [int(v) for p in pairs for v in p]
        n = len(flat) // 2
        self._req("SEL_BEGIN", L["SEL_BEGIN"].pack(count=n))
        per = max(1, L["SEL_CHUNK"].max_tail(self.max_payload))
        for off in range(0, n, per):
            k = min(per, n - off)
            self._req("SEL_CHUNK", L["SEL_CHUNK"].pack(offset=off, tail=flat[2 * off:2 * (off + k)]))
        self._req("SEL_COMMIT", L["SEL_COMMIT"].pack(count=n))

    def _stats(self, d: dict, fetch_all: bool = True) -> Stats:
        cs = list(d["channel_stats"])
        n = d["n_selected"]
        per = max(1, L["STATS"].max_tail(self.max_payload))
        while fetch_all and len(cs) < n:
            r = self._req("GET_STATS", L["GET_STATS"].pack(offset=len(cs), count=min(per, n - len(cs))))
            if r["offset"] != len(cs) or not r["channel_stats"]:
                raise ProtocolError("GET_STATS: unexpected page")
            cs += r["channel_stats"]
        return Stats(d["loss_sum"], d["correct"], d["seen"], d["steps"], d["cycles_forward"],
                     d["cycles_backward"], d["cycles_update"], d["cycles_total"],
                     d["stack_high_water"], n, np.asarray(cs, dtype=np.float32), d["nonfinite"])

    def get_stats(self) -> Stats:
        """Statistics since the last reset, all channel statistics."""
        r = self._req("GET_STATS", L["GET_STATS"].pack(
            offset=0, count=max(0, L["STATS"].max_tail(self.max_payload))))
        return self._stats(r)

    def run_epoch(self, split="train", start: int = 0, count: int | None = None, *,
                  batch: int, lr: float, seed: int = 0,
                  keep_stats: bool = False, timeout: float | None = None) -> Stats:
        """Train on samples [start, start+count) of the device's dataset image,
        in the order of order.visit_order(start, count, seed, batch). Epochs
        longer than one RUN_EPOCH holds are run as several parts (whole
        batches each) whose statistics add up."""
        sp = _SPLIT[split]
        if count is None:
            inf = self.info()
            count = (inf.n_train if sp == 0 else inf.n_test) - start
        cap = self._info.max_epoch if self._info else spec.MAX_EPOCH_SAMPLES
        page = max(0, L["STATS"].max_tail(self.max_payload))
        r = None
        for k, (off, n) in enumerate(epoch_parts(count, batch, cap)):
            flags = spec.EPOCH_KEEP_STATS if (keep_stats or k > 0) else 0
            r = self._req("RUN_EPOCH", L["RUN_EPOCH"].pack(
                split=sp, flags=flags, batch=batch, start=start + off, count=n,
                lr=float(lr), seed=part_seed(seed, k), page=page, pad=0), timeout=timeout)
        return self._stats(r)

    def _stage_sample(self, x, nchw: bool, request: str) -> tuple[str, list]:
        """Sends a sample that does not fit one `request` frame in SAMPLE_CHUNKs
        except for its last elements, which it returns with the request to
        carry them (the whole sample when it fits). Float samples go as floats;
        int8 samples (an int8 model's input codes) as the _S8 requests, 1 byte
        per element."""
        x = np.asarray(x)
        codes = x.dtype == np.int8
        if codes:
            request, chunk = request + "_S8", "SAMPLE_CHUNK_S8"
            if self._info is not None and not self._info.input_s8:
                raise ValueError("int8 codes for a device whose model input is fp32")
        else:
            x, chunk = x.astype(np.float32, copy=False), "SAMPLE_CHUNK"
        if nchw:
            x = x.transpose(1, 2, 0)
        flat = np.ascontiguousarray(x).reshape(-1)
        n = len(flat)
        if self._info is not None:
            want = int(np.prod(self._info.input_shape))
            if n != want:
                raise ValueError(f"a sample of {n} elements, the device's input has {want}")
        fit = max(0, L[request].max_tail(self.max_payload))
        if n <= fit:
            return request, flat.tolist()
        per = max(1, L[chunk].max_tail(self.max_payload))
        off = 0
        while n - off > fit:
            k = min(per, n - off)
            self._req(chunk, L[chunk].pack(offset=off, tail=flat[off:off + k].tolist()))
            off += k
        return request, flat[off:].tolist()

    def train_stream(self, x, label: int, *, index: int, count: int, batch: int, lr: float,
                     nchw: bool = False, seed: int = 0) -> Stats:
        """Train on sample number `index` of an epoch of `count` samples sent
        over the line (no dataset image needed): in the TRAIN_STREAM frame, or
        when it is larger, in SAMPLE_CHUNKs followed by the TRAIN_STREAM with
        its last elements. The device's runtime scales it by its mini-batch and
        steps SGD where the mini-batch ends, as RUN_EPOCH does; index 0 resets
        the statistics and restarts the int8 rounding from `seed` (the epoch's,
        as RUN_EPOCH's). x: (h, w, c) array (or (c, h, w) with nchw=True) of
        floats, or of an int8 model's input codes (TRAIN_STREAM_S8: a quarter
        of the bytes). Returns the running statistics (no channel stats)."""
        request, tail = self._stage_sample(x, nchw, "TRAIN_STREAM")
        r = self._req(request, L[request].pack(
            batch=batch, pad=0, index=int(index), count=int(count), label=int(label),
            lr=float(lr), seed=int(seed) & 0xFFFFFFFF, tail=tail))
        return self._stats(r, fetch_all=False)

    def evaluate(self, split="test", start: int = 0, count: int | None = None,
                 timeout: float | None = None) -> EvalResult:
        sp = _SPLIT[split]
        if count is None:
            inf = self.info()
            count = (inf.n_train if sp == 0 else inf.n_test) - start
        r = self._req("EVALUATE", L["EVALUATE"].pack(split=sp, pad=0, pad2=0, start=start, count=count),
                      timeout=timeout)
        return EvalResult(r["loss_sum"], r["correct"], r["count"], r["cycles"], r["nonfinite"])

    def forward(self, x, nchw: bool = False) -> np.ndarray:
        """Logits of one sample sent over the line (floats or int8 codes, in as
        many frames as train_stream)."""
        request, tail = self._stage_sample(x, nchw, "FORWARD")
        r = self._req(request, L[request].pack(tail=tail))
        return np.asarray(r["logits"], dtype=np.float32)

    def read_weights(self, layer: int, which="weight", offset: int = 0,
                     count: int | None = None) -> np.ndarray:
        """Elements [offset, offset+count) of a trainable layer's weight (OHWI,
        flat) or bias, in as many frames as needed."""
        if count is None:
            lay = self.info().layers[layer]
            count = (lay.weight_count if _WHICH[which] == 0 else lay.bias_count) - offset
        per = max(1, L["WEIGHTS"].max_tail(self.max_payload))
        out = []
        done = 0
        while done < count:
            k = min(per, count - done)
            r = self._req("READ_WEIGHTS", L["READ_WEIGHTS"].pack(
                layer=layer, which=_WHICH[which], pad=0, offset=offset + done, count=k))
            if r["offset"] != offset + done or len(r["values"]) != k:
                raise ProtocolError("READ_WEIGHTS: unexpected answer")
            out += r["values"]
            done += k
        return np.asarray(out, dtype=np.float32)

    def write_weights(self, layer: int, which, values, offset: int = 0) -> None:
        vals = np.asarray(values, dtype=np.float32).reshape(-1).tolist()
        per = max(1, L["WRITE_WEIGHTS"].max_tail(self.max_payload))
        for o in range(0, len(vals), per):
            self._req("WRITE_WEIGHTS", L["WRITE_WEIGHTS"].pack(
                layer=layer, which=_WHICH[which], pad=0, offset=offset + o, tail=vals[o:o + per]))

    def read_all_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight, bias) of every trainable layer (bias empty if it has none)."""
        return [(self.read_weights(l.index, 0), self.read_weights(l.index, 1))
                for l in self.info().layers]

    def write_all_weights(self, weights) -> None:
        for idx, (w, b) in enumerate(weights):
            self.write_weights(idx, 0, w)
            if len(b):
                self.write_weights(idx, 1, b)

    def shutdown(self, code: int = 0) -> None:
        """The device answers, then leaves with `code` (QEMU exits). If the
        answer is lost the device is already gone and cannot repeat it, so
        silence (or a closed port) after sending counts as done."""
        try:
            self._req("SHUTDOWN", L["SHUTDOWN"].pack(code=code), retries=1)
        except DeviceError:
            raise
        except ProtocolError:
            pass
