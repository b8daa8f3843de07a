"""End to end against a native device process: the real device code, engine
and host board, built with sanitizers (conftest.py)."""
import struct

import numpy as np
import pytest

from medyate.protocol import DeviceError, spec
from medyate.protocol.framing import FrameError, encode_frame, pack_frame, cobs_encode
from medyate.protocol.order import batch_sizes, epoch_order, visit_order

from protocol_helpers import learnable_data

L = spec.LAYOUT
E = spec.ERR


def test_info(dev):
    i = dev.info()
    assert (i.engine_version, i.protocol_version) == (1, spec.PROTOCOL_VERSION)
    assert i.model_hash == 0x5EED0001 and i.model == "fixture-conv-gap-fc" and i.board == "host"
    assert (i.arena_size, i.pool_size, i.max_selected, i.classes) == (1600, 400, 5, 3)
    assert i.input_shape == (4, 4, 2) and i.n_layers == 2 and i.n_ops == 4
    assert i.has_dataset and (i.n_train, i.n_test) == (96, 32) and not i.input_s8
    assert i.max_payload == spec.MAX_PAYLOAD and i.max_epoch == spec.MAX_EPOCH_SAMPLES
    l0, l1 = i.layers
    assert (l0.op, l0.kind, l0.train_bias, l0.channels, l0.slice_size, l0.map_size,
            l0.weight_count, l0.bias_count) == (0, 1, False, 2, 36, 16, 72, 4)
    assert (l1.op, l1.kind, l1.train_bias, l1.channels, l1.slice_size, l1.map_size,
            l1.weight_count, l1.bias_count) == (3, 3, True, 4, 3, 1, 12, 3)
    assert dev.ping(b"\x00\x01echo") == b"\x00\x01echo"


def test_layer_table_paging(device_process):
    d = device_process().device()
    d._limit = L["LAYERS_R"].size + L["LAYERS_R"].tail_size  # one layer per page
    assert [l.index for l in d.info().layers] == [0, 1]
    assert d.link.counters.requests == 3


@pytest.mark.parametrize("sel,code", [
    ([(2, 0)], E["MDY_ERR_RANGE"]),                  # no layer 2
    ([(0, 2)], E["MDY_ERR_RANGE"]),                  # conv has 2 input channels
    ([(1, 4)], E["MDY_ERR_RANGE"]),
    ([(1, 0), (1, 0)], E["MDY_ERR_ORDER"]),          # duplicate
    ([(1, 2), (1, 1)], E["MDY_ERR_ORDER"]),          # not increasing
    ([(1, 0), (0, 1)], E["MDY_ERR_ORDER"]),
    ([(0, 0), (0, 1)], E["MDY_ERR_BUDGET"]),         # 2 x 52 > 100 elements
    ([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (1, 3)], E["MDY_ERR_BUDGET"]),  # > max_selected
])
def test_selection_rejected(dev, sel, code):
    dev.set_selection([(0, 1), (1, 3)])
    with pytest.raises(DeviceError) as e:
        dev.set_selection(sel)
    assert e.value.code == code
    # the previous selection stays installed and trains
    assert dev.info(refresh=True).n_selected == 2
    s = dev.run_epoch("train", 0, 16, batch=8, lr=0.05, seed=1)
    assert s.n_selected == 2 and len(s.channel_stats) == 2 and s.channel_stats.min() > 0


def test_selection_chunks_and_state(dev):
    dev._limit = L["SEL_CHUNK"].size + 4      # one pair per chunk
    dev.set_selection([(0, 0), (1, 0), (1, 1), (1, 3)])
    assert dev.info(refresh=True).n_selected == 4
    req = dev.link.request
    with pytest.raises(DeviceError) as e:
        req("SEL_CHUNK", L["SEL_CHUNK"].pack(offset=0, tail=[1, 0]))
    assert e.value.name == "BAD_STATE"
    with pytest.raises(DeviceError) as e:
        req("SEL_COMMIT", L["SEL_COMMIT"].pack(count=0))
    assert e.value.name == "BAD_STATE"
    req("SEL_BEGIN", L["SEL_BEGIN"].pack(count=2))
    with pytest.raises(DeviceError) as e:   # a gap
        req("SEL_CHUNK", L["SEL_CHUNK"].pack(offset=1, tail=[1, 0]))
    assert e.value.name == "BAD_FIELD"
    with pytest.raises(DeviceError) as e:   # past the announced count
        req("SEL_CHUNK", L["SEL_CHUNK"].pack(offset=0, tail=[1, 0, 1, 1, 1, 2]))
    assert e.value.name == "BAD_FIELD"
    req("SEL_CHUNK", L["SEL_CHUNK"].pack(offset=0, tail=[1, 0]))
    with pytest.raises(DeviceError) as e:   # incomplete
        req("SEL_COMMIT", L["SEL_COMMIT"].pack(count=2))
    assert e.value.name == "BAD_STATE"
    assert dev.info(refresh=True).n_selected == 4
    dev.set_selection([])                    # bias-only training
    s = dev.run_epoch("train", 0, 8, batch=4, lr=0.1, seed=0)
    assert s.n_selected == 0 and s.steps == 2


def test_training_lowers_loss(dev):
    w0 = dev.read_all_weights()
    e0 = dev.evaluate("test")
    dev.set_selection([(0, 0), (1, 0), (1, 1), (1, 2), (1, 3)])
    progress = []
    dev.link.on_progress = progress.append
    losses = []
    for ep in range(6):
        s = dev.run_epoch("train", batch=8, lr=0.5, seed=ep + 1)
        assert s.seen == 96 and s.steps == 12
        assert s.cycles_forward > 0 and s.cycles_backward > 0 and s.cycles_update > 0
        assert s.cycles_total >= s.cycles_forward + s.cycles_backward + s.cycles_update
        assert len(s.channel_stats) == 5 and np.all(s.channel_stats > 0)
        losses.append(s.loss)
    assert losses[-1] < 0.8 * losses[0], losses
    e1 = dev.evaluate("test")
    assert e1.count == 32 and e1.loss < e0.loss and e1.accuracy > e0.accuracy
    # progress every 16 samples, not after the last
    assert [p["done"] for p in progress[:5]] == [16, 32, 48, 64, 80]
    assert progress[0]["request"] == spec.MSG["RUN_EPOCH"] and progress[0]["total"] == 96
    w1 = dev.read_all_weights()
    # conv channel 1 was never selected: its slice W[:, :, :, 1] is untouched
    conv0, conv1 = w0[0][0].reshape(4, 3, 3, 2), w1[0][0].reshape(4, 3, 3, 2)
    assert np.array_equal(conv0[..., 1], conv1[..., 1])
    assert not np.array_equal(conv0[..., 0], conv1[..., 0])
    assert np.array_equal(w0[0][1], w1[0][1])           # conv bias frozen
    assert not np.array_equal(w0[1][1], w1[1][1])       # FC bias trains


def test_forward_and_evaluate_agree(dev):
    x_tr, y_tr, x_te, y_te = learnable_data()
    ev = dev.evaluate("test", 0, 4)
    loss, correct = 0.0, 0
    for i in range(4):
        z = dev.forward(x_te[i], nchw=True).astype(np.float64)
        loss += np.log(np.exp(z - z.max()).sum()) + z.max() - z[y_te[i]]
        correct += int(np.argmax(z) == y_te[i])
    assert ev.correct == correct and ev.loss_sum == pytest.approx(loss, rel=1e-5)


def test_divergence_is_reported(device_process):
    """STATS and EVAL_R count NaN/inf losses and gradients: a learning rate
    that blows the weights up shows in every epoch and evaluation after it."""
    d = device_process().device()
    d.set_selection([(0, 0), (1, 0), (1, 1)])
    assert d.run_epoch("train", 0, 32, batch=8, lr=0.1, seed=1).nonfinite == 0
    assert d.evaluate("test").nonfinite == 0
    s = d.run_epoch("train", 0, 32, batch=8, lr=1e30, seed=2)
    assert s.nonfinite > 0 and d.get_stats().nonfinite == s.nonfinite
    assert d.run_epoch("train", 0, 32, batch=8, lr=0.1, seed=3).nonfinite == 32 + 4
    assert d.evaluate("test").nonfinite == d.info().n_test


def test_stream_equals_epoch(device_process):
    """TRAIN_STREAM fed in visit_order with batch_sizes reproduces RUN_EPOCH
    bit for bit: the order and batching rules are the documented ones."""
    x_tr, y_tr, *_ = learnable_data()
    sel = [(0, 1), (1, 0), (1, 2)]
    a, b = device_process().device(), device_process().device()
    a.set_selection(sel)
    b.set_selection(sel)
    sa = a.run_epoch("train", 10, 20, batch=8, lr=0.3, seed=77)
    order = visit_order(10, 20, 77, 8)
    assert order == [10 + i for i in epoch_order(20, 77)]
    assert batch_sizes(20, 8) == [8, 8, 4]
    for k, i in enumerate(order):
        sb = b.train_stream(x_tr[i], int(y_tr[i]), index=k, count=20, batch=8, lr=0.3,
                            nchw=True)
    assert (sb.seen, sb.steps, sb.correct) == (sa.seen, sa.steps, sa.correct)
    assert sb.loss_sum == sa.loss_sum
    for (wa, ba), (wb, bb) in zip(a.read_all_weights(), b.read_all_weights()):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)
    assert np.array_equal(a.get_stats().channel_stats, b.get_stats().channel_stats)


def test_split_epoch_matches_stream(device_process):
    x_tr, y_tr, *_ = learnable_data()
    a, b = device_process().device(), device_process().device()
    for d in (a, b):
        d.set_selection([(0, 0), (1, 1)])
    a.info().max_epoch = 40          # force the host to split the epoch in parts
    sa = a.run_epoch("train", 0, 96, batch=8, lr=0.1, seed=5)
    assert a.link.counters.requests >= 3 and sa.seen == 96 and sa.steps == 12
    order = visit_order(0, 96, 5, 8, max_part=40)
    for k, i in enumerate(order):
        b.train_stream(x_tr[i], int(y_tr[i]), index=k, count=96, batch=8, lr=0.1, nchw=True)
    for (wa, ba), (wb, bb) in zip(a.read_all_weights(), b.read_all_weights()):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)
    assert np.allclose(sa.channel_stats, b.get_stats().channel_stats, rtol=1e-6)


def test_stats_paging(dev):
    dev.set_selection([(0, 0), (1, 0), (1, 1), (1, 2), (1, 3)])
    full = dev.run_epoch("train", 0, 32, batch=8, lr=0.1, seed=3)
    dev._limit = L["STATS"].size + 2 * 4     # two channel statistics per frame
    paged = dev.get_stats()
    assert np.array_equal(full.channel_stats, paged.channel_stats)
    assert dev.link.counters.requests >= 3


def test_weights_read_write(dev):
    w = np.arange(72, dtype=np.float32) / 100
    dev._limit = 64                          # several frames each way
    dev.write_weights(0, "weight", w)
    dev.write_weights(1, "bias", [1.5, -2.5], offset=1)
    assert np.array_equal(dev.read_weights(0, "weight"), w)
    assert np.array_equal(dev.read_weights(1, "bias", 1, 2), [1.5, -2.5])
    assert np.array_equal(dev.read_weights(0, 0, 70, 2), w[70:])


def _err(dev, name, payload):
    with pytest.raises(DeviceError) as e:
        dev.link.request(name, payload)
    return e.value.name


def _epoch(**kw):
    d = dict(split=0, flags=0, batch=8, start=0, count=8, lr=0.1, seed=1, page=10, pad=0)
    d.update(kw)
    return L["RUN_EPOCH"].pack(**d)


def _read(**kw):
    d = dict(layer=0, which=0, pad=0, offset=0, count=4)
    d.update(kw)
    return L["READ_WEIGHTS"].pack(**d)


def _write(tail=(1.0,), **kw):
    d = dict(layer=0, which=0, pad=0, offset=0)
    d.update(kw)
    return L["WRITE_WEIGHTS"].pack(tail=tail, **d)


def _stream(n=32, **kw):
    d = dict(batch=1, pad=0, index=0, count=1, label=0, lr=0.1, seed=0)
    d.update(kw)
    return L["TRAIN_STREAM"].pack(tail=[0.0] * n, **d)


BAD_REQUESTS = [
    ("RUN_EPOCH", _epoch(split=2), "BAD_FIELD"),
    ("RUN_EPOCH", _epoch(count=0), "BAD_FIELD"),
    ("RUN_EPOCH", _epoch(start=90, count=7), "BAD_FIELD"),
    ("RUN_EPOCH", _epoch(start=2**32 - 1, count=2), "BAD_FIELD"),
    ("RUN_EPOCH", _epoch(split=1, count=33), "BAD_FIELD"),
    ("RUN_EPOCH", _epoch(batch=0), "BAD_FIELD"),
    ("RUN_EPOCH", _epoch(lr=float("nan")), "BAD_FIELD"),
    ("RUN_EPOCH", _epoch(lr=float("inf")), "BAD_FIELD"),
    ("RUN_EPOCH", _epoch(flags=0x80), "BAD_FIELD"),
    ("RUN_EPOCH", _epoch()[:-1], "BAD_LENGTH"),
    ("RUN_EPOCH", _epoch() + b"\0", "BAD_LENGTH"),
    ("EVALUATE", L["EVALUATE"].pack(split=1, pad=0, pad2=0, start=0, count=33), "BAD_FIELD"),
    ("EVALUATE", L["EVALUATE"].pack(split=7, pad=0, pad2=0, start=0, count=1), "BAD_FIELD"),
    ("EVALUATE", b"", "BAD_LENGTH"),
    ("READ_WEIGHTS", _read(layer=2), "MDY_ERR_RANGE"),
    ("READ_WEIGHTS", _read(layer=0xFFFF), "MDY_ERR_RANGE"),
    ("READ_WEIGHTS", _read(which=2), "BAD_FIELD"),
    ("READ_WEIGHTS", _read(offset=70, count=3), "BAD_FIELD"),
    ("READ_WEIGHTS", _read(offset=2**32 - 2, count=4), "BAD_FIELD"),
    ("READ_WEIGHTS", _read(count=0), "BAD_FIELD"),
    ("READ_WEIGHTS", _read(count=600), "BAD_FIELD"),         # more than a frame holds
    ("READ_WEIGHTS", _read(layer=0, which=1, offset=4, count=1), "BAD_FIELD"),
    ("WRITE_WEIGHTS", _write(layer=5), "MDY_ERR_RANGE"),
    ("WRITE_WEIGHTS", _write(offset=72), "BAD_FIELD"),
    ("WRITE_WEIGHTS", _write(tail=[1.0] * 5, which=1), "BAD_FIELD"),
    ("WRITE_WEIGHTS", _write(tail=()), "BAD_FIELD"),
    ("WRITE_WEIGHTS", _write() + b"\1", "BAD_LENGTH"),
    ("TRAIN_STREAM", _stream(31), "BAD_STATE"),       # the first float was never staged
    ("TRAIN_STREAM", _stream(0), "BAD_STATE"),
    ("TRAIN_STREAM", _stream(33), "BAD_LENGTH"),
    ("TRAIN_STREAM", _stream(label=3), "MDY_ERR_LABEL"),
    ("TRAIN_STREAM", _stream(label=-1), "MDY_ERR_LABEL"),
    ("TRAIN_STREAM", _stream(batch=0), "BAD_FIELD"),
    ("TRAIN_STREAM", _stream(index=1), "BAD_FIELD"),      # index beyond the epoch
    ("TRAIN_STREAM", _stream(count=0), "BAD_FIELD"),
    ("TRAIN_STREAM", _stream(lr=float("nan")), "BAD_FIELD"),
    ("FORWARD", L["FORWARD"].pack(tail=[0.0] * 33), "BAD_LENGTH"),
    ("FORWARD", b"\0\0", "BAD_LENGTH"),
    ("FORWARD", L["FORWARD"].pack(tail=[0.0] * 5), "BAD_STATE"),
    ("SAMPLE_CHUNK", L["SAMPLE_CHUNK"].pack(offset=0), "BAD_FIELD"),
    ("SAMPLE_CHUNK", L["SAMPLE_CHUNK"].pack(offset=30, tail=[0.0] * 3), "BAD_FIELD"),
    ("SAMPLE_CHUNK", L["SAMPLE_CHUNK"].pack(offset=0, tail=[0.0] * 33), "BAD_FIELD"),
    ("SAMPLE_CHUNK", L["SAMPLE_CHUNK"].pack(offset=2**32 - 1, tail=[0.0] * 2), "BAD_FIELD"),
    ("SAMPLE_CHUNK", L["SAMPLE_CHUNK"].pack(offset=4, tail=[0.0] * 4), "BAD_STATE"),
    ("SAMPLE_CHUNK", b"\0\0", "BAD_LENGTH"),
    ("SAMPLE_CHUNK", L["SAMPLE_CHUNK"].pack(offset=0, tail=[0.0]) + b"\0", "BAD_LENGTH"),
    # int8 codes for the fixture's fp32 input: refused, whole or in chunks
    ("TRAIN_STREAM_S8", L["TRAIN_STREAM_S8"].pack(tail=[0] * 32, batch=1, pad=0, index=0,
                                                  count=1, label=0, lr=0.1, seed=0), "BAD_STATE"),
    ("TRAIN_STREAM_S8", b"\0" * 19, "BAD_LENGTH"),
    ("SAMPLE_CHUNK_S8", L["SAMPLE_CHUNK_S8"].pack(offset=0, tail=[0] * 4), "BAD_STATE"),
    ("FORWARD_S8", L["FORWARD_S8"].pack(tail=[0] * 32), "BAD_STATE"),
    ("LAYERS", L["LAYERS"].pack(offset=1, count=2), "BAD_FIELD"),
    ("LAYERS", L["LAYERS"].pack(offset=0, count=0), "BAD_FIELD"),
    ("LAYERS", L["LAYERS"].pack(offset=0xFFFF, count=0xFFFF), "BAD_FIELD"),
    ("GET_STATS", L["GET_STATS"].pack(offset=1, count=1), "BAD_FIELD"),
    ("SEL_BEGIN", L["SEL_BEGIN"].pack(count=6), "MDY_ERR_BUDGET"),
    ("SEL_BEGIN", L["SEL_BEGIN"].pack(count=2**32 - 1), "MDY_ERR_BUDGET"),
    ("SEL_BEGIN", b"\0", "BAD_LENGTH"),
    ("INFO", b"\0", "BAD_LENGTH"),
    ("SHUTDOWN", b"", "BAD_LENGTH"),
]


def test_bad_fields_rejected(dev):
    w0 = dev.read_all_weights()
    for name, payload, want in BAD_REQUESTS:
        assert _err(dev, name, payload) == want, (name, payload.hex())
    for t in (0x00, 0x13, 0x7F, 0x80, 0x87, 0xF0, 0xFF):
        assert _err(dev, t, b"") == "UNKNOWN_TYPE"
    assert dev.ping(b"alive") == b"alive"
    for (a, b), (c, d) in zip(w0, dev.read_all_weights()):
        assert np.array_equal(a, c) and np.array_equal(b, d)


def test_no_or_bad_dataset(device_process, build_dir):
    img = bytearray((build_dir / "data.bin").read_bytes())
    cases = {"none": False}
    bad = bytearray(img)
    bad[20] ^= 1                     # header CRC no longer matches
    cases["crc"] = build_dir / "bad-crc.bin"
    cases["crc"].write_bytes(bad)
    cases["short"] = build_dir / "short.bin"       # cut 84 bytes short of total_size
    cases["short"].write_bytes(img[:-84])
    from medyate.protocol.dataset_image import read_dataset_image
    with pytest.raises(ValueError, match="cut short"):
        read_dataset_image(bytes(img[:-84]))
    stale = bytearray(img)
    stale[-20] ^= 0x40                                # a sample byte changed after writing
    cases["data"] = build_dir / "bad-data.bin"
    cases["data"].write_bytes(stale)
    from medyate.protocol.dataset_image import write_dataset_image
    rng = np.random.default_rng(1)
    cases["shape"] = write_dataset_image(build_dir / "shape.bin", rng.normal(size=(4, 3, 4, 4)),
                                         [0, 1, 2, 0], rng.normal(size=(2, 3, 4, 4)), [0, 1])
    cases["classes"] = write_dataset_image(build_dir / "classes.bin", rng.normal(size=(4, 2, 4, 4)),
                                           [0, 1, 2, 4], rng.normal(size=(2, 2, 4, 4)), [0, 1])
    # int8 codes, for the fixture's fp32 input
    cases["codes"] = write_dataset_image(build_dir / "codes.bin",
                                         rng.integers(-128, 128, (4, 2, 4, 4), dtype=np.int8),
                                         [0, 1, 2, 0],
                                         rng.integers(-128, 128, (2, 2, 4, 4), dtype=np.int8),
                                         [0, 1], input_quant=(0.02, -3))
    for name, ds in cases.items():
        d = device_process(ds).device()
        assert not d.info().has_dataset, name
        with pytest.raises(DeviceError) as e:
            d.run_epoch("train", 0, 1, batch=1, lr=0.1)
        assert e.value.name == ("DATASET_SHAPE" if name in ("shape", "classes", "codes")
                                else "NO_DATASET"), name
        with pytest.raises(DeviceError):
            d.evaluate("test", 0, 1)
        # streaming needs no dataset
        d.train_stream(np.zeros((4, 4, 2)), 1, index=0, count=1, batch=1, lr=0.1)


def test_retry_is_answered_from_cache(dev):
    """The same request frame twice (a retry after a lost answer) runs once."""
    dev.set_selection([(1, 0)])
    link = dev.link
    w0 = dev.read_weights(1, "weight")
    wire = encode_frame(spec.MSG["RUN_EPOCH"], 4242, _epoch(count=16))
    link.send_raw(wire)
    link.send_raw(wire)
    answers = []
    while len(answers) < 2:
        frames = link.receive(2.0)
        assert frames, "device did not answer"
        answers += [f for f in frames if f.type == spec.MSG["STATS"]]
    assert answers[0] == answers[1] and answers[0].seq == 4242
    assert dev.get_stats().steps == 2                  # not 4
    w1 = dev.read_weights(1, "weight")
    # one more epoch of the same request (new seq) trains again
    link.send_raw(encode_frame(spec.MSG["RUN_EPOCH"], 4243, _epoch(count=16)))
    assert [f for f in link.receive(2.0) if f.type == spec.MSG["STATS"]]
    assert not np.array_equal(w0, w1) and not np.array_equal(w1, dev.read_weights(1, "weight"))


def _recrc(body):
    from medyate.protocol.framing import crc32
    return body + struct.pack("<I", crc32(body))


def malformed_frames():
    good = pack_frame(spec.MSG["PING"], 5, b"abc")
    hdr = struct.pack("<BBHH", 1, spec.MSG["PING"], 5, 3)
    return {
        "bad crc": b"\0" + cobs_encode(good[:-1] + bytes([good[-1] ^ 0xFF])) + b"\0",
        "flipped bit": b"\0" + cobs_encode(good[:6] + b"abd" + good[9:]) + b"\0",
        "short": b"\0" + cobs_encode(good[:7]) + b"\0",
        "len too big": b"\0" + cobs_encode(_recrc(hdr[:4] + struct.pack("<H", 9) + b"abc")) + b"\0",
        "len too small": b"\0" + cobs_encode(_recrc(hdr[:4] + struct.pack("<H", 1) + b"abc")) + b"\0",
        "cut COBS block": b"\0\x09\x01\x02\x03\0",
        "too long": b"\0" + b"\x41" * (spec.ENCODED_MAX + 100) + b"\0",
        "oversized payload": b"\0" + cobs_encode(_recrc(struct.pack("<BBHH", 1, 1, 5, 2100) + bytes(2100))) + b"\0",
        "noise": bytes(np.random.default_rng(3).integers(1, 256, 300, dtype=np.uint8)) + b"\0",
    }


@pytest.mark.parametrize("name", list(malformed_frames()))
def test_malformed_frames_get_nak(dev, name):
    dev.link.send_raw(malformed_frames()[name])
    frames = dev.link.receive(1.0)
    naks = [f for f in frames if not isinstance(f, FrameError)]
    assert naks and naks[0].type == spec.MSG["ERROR"] and naks[0].seq == spec.NAK_SEQ
    assert L["ERROR"].unpack(naks[0].payload)["code"] == E["BAD_FRAME"]
    assert dev.ping(b"ok") == b"ok"      # and the device goes on


def test_empty_frames_are_ignored(dev):
    dev.link.send_raw(b"\0" * 50)
    assert dev.link.receive(0.3) == []
    assert dev.ping(b"ok") == b"ok"


def test_other_version_rejected(dev):
    dev.link.send_raw(encode_frame(spec.MSG["INFO"], 77, b"", version=spec.PROTOCOL_VERSION + 1))
    f = dev.link.receive(1.0)[0]
    e = L["ERROR"].unpack(f.payload)
    assert f.type == spec.MSG["ERROR"] and f.seq == 77 and e["code"] == E["BAD_VERSION"]
    assert e["request"] == spec.MSG["INFO"]


def test_shutdown_exits_with_code(device_process):
    p = device_process()
    p.device().shutdown(7)
    assert p.proc.wait(5) == 7
