"""Streaming samples larger than one frame: SAMPLE_CHUNKs fill the device's
sample buffer, the TRAIN_STREAM or FORWARD with the last floats completes and
consumes it. Mostly against fixture_big_model.c (a 16x16x3 input, 3072 bytes:
more than a frame), on the native device built with sanitizers."""
import re

import numpy as np
import pytest

from medyate.protocol import DeviceError, spec
from medyate.protocol.framing import encode_frame
from medyate.protocol.order import batch_sizes, visit_order

from protocol_helpers import HERE, learnable_data

L = spec.LAYOUT
N = 16 * 16 * 3


def _c_array(name):
    src = (HERE / "fixture_big_model.c").read_text()
    body = re.search(rf"static float {name}\[\d+\] = \{{(.*?)\}};", src, re.S).group(1)
    return np.array([float(v.strip().rstrip("f")) for v in body.replace("\n", " ").split(",") if v.strip()],
                    dtype=np.float64)


def reference_logits(x, w1, b1):
    """The big fixture in numpy: x (16, 16, 3) NHWC; w1 (3, 2), b1 (3,)."""
    w0 = _c_array("w0").reshape(2, 4, 4, 3)
    b0 = _c_array("b0")
    patches = x.reshape(4, 4, 4, 4, 3).transpose(0, 2, 1, 3, 4)     # oh, ow, kh, kw, c
    conv = np.einsum("abhwc,ohwc->abo", patches, w0) + b0
    g = conv.mean(axis=(0, 1))
    return w1 @ g + b1, g


def samples(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, 16, 16, 3)).astype(np.float32), rng.integers(0, 3, n)


@pytest.fixture
def big(device_process, big_device_exe):
    def start(**link_kw):
        d = device_process(False, exe=big_device_exe).device(**link_kw)
        assert d.info().input_shape == (16, 16, 3)
        return d
    return start


def _err(dev, name, payload):
    with pytest.raises(DeviceError) as e:
        dev.link.request(name, payload)
    return e.value.name


def _chunk(off, vals):
    return L["SAMPLE_CHUNK"].pack(offset=off, tail=list(map(float, vals)))


def _stream(vals, **kw):
    d = dict(batch=1, pad=0, index=0, count=1, label=0, lr=0.1, seed=0)
    d.update(kw)
    return L["TRAIN_STREAM"].pack(tail=list(map(float, vals)), **d)


@pytest.mark.parametrize("limit", [None, 1000, 64])
def test_forward_of_a_chunked_sample(big, limit):
    """Every float lands where it belongs, whatever the chunking: the logits
    are the numpy model's."""
    d = big()
    d._limit = limit
    xs, _ = samples(3)
    w1 = d.read_weights(0, "weight").reshape(3, 2).astype(np.float64)
    b1 = d.read_weights(0, "bias").astype(np.float64)
    per = max(1, L["SAMPLE_CHUNK"].max_tail(d.max_payload))
    fit = L["FORWARD"].max_tail(d.max_payload)
    frames = -(-(N - fit) // per) + 1
    for x in xs:
        n0 = d.link.counters.requests
        z = d.forward(x)
        assert d.link.counters.requests - n0 == frames
        np.testing.assert_allclose(z, reference_logits(x.astype(np.float64), w1, b1)[0],
                                   rtol=1e-5, atol=1e-6)
    # NCHW input is transposed before it is sent
    assert np.array_equal(d.forward(xs[0].transpose(2, 0, 1), nchw=True), d.forward(xs[0]))


def test_chunked_training_is_the_same_for_any_chunking(big):
    """Bit for bit the same epoch whether a sample takes 2 or 50 frames, and
    one SGD step is the numpy gradient step on the FC layer."""
    xs, ys = samples(10, seed=1)
    devs = [big(), big(), big()]
    devs[1]._limit, devs[2]._limit = 300, 64
    w1 = devs[0].read_weights(0, "weight").reshape(3, 2).astype(np.float64)
    b1 = devs[0].read_weights(0, "bias").astype(np.float64)
    out = []
    for d in devs:
        d.set_selection([(0, 0), (0, 1)])
        assert batch_sizes(len(xs), 4) == [4, 4, 2]
        for k in range(len(xs)):
            st = d.train_stream(xs[k], int(ys[k]), index=k, count=len(xs), batch=4, lr=0.2)
        out.append((st.loss_sum, st.seen, st.steps, d.read_all_weights()))
    for o in out[1:]:
        assert o[:3] == out[0][:3] == (o[0], 10, 3)
        for (wa, ba), (wb, bb) in zip(o[3], out[0][3]):
            assert np.array_equal(wa, wb) and np.array_equal(ba, bb)
    # one sample, one step, against numpy
    d = big()
    d.set_selection([(0, 0), (0, 1)])
    st = d.train_stream(xs[0], int(ys[0]), index=0, count=1, batch=1, lr=0.2)
    z, g = reference_logits(xs[0].astype(np.float64), w1, b1)
    p = np.exp(z - z.max())
    p /= p.sum()
    assert st.loss_sum == pytest.approx(-np.log(p[ys[0]]), rel=1e-5)
    dz = p - np.eye(3)[ys[0]]
    np.testing.assert_allclose(d.read_weights(0, "weight").reshape(3, 2),
                               w1 - 0.2 * np.outer(dz, g), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d.read_weights(0, "bias"), b1 - 0.2 * dz, rtol=1e-5, atol=1e-6)


def test_sample_chunks_are_validated(big):
    d = big()
    x = np.arange(N, dtype=np.float32) / N
    w0 = d.read_all_weights()
    # nothing staged: the short TRAIN_STREAM / FORWARD is an incomplete sample
    assert _err(d, "TRAIN_STREAM", _stream(x[-300:])) == "BAD_STATE"
    assert _err(d, "FORWARD", L["FORWARD"].pack(tail=x[-300:].tolist())) == "BAD_STATE"
    assert _err(d, "TRAIN_STREAM", _stream([])) == "BAD_STATE"
    assert _err(d, "SAMPLE_CHUNK", _chunk(N, [1.0])) == "BAD_FIELD"
    assert _err(d, "SAMPLE_CHUNK", _chunk(N - 2, [1.0] * 3)) == "BAD_FIELD"
    assert _err(d, "SAMPLE_CHUNK", _chunk(2**32 - 1, [1.0] * 2)) == "BAD_FIELD"
    assert _err(d, "SAMPLE_CHUNK", _chunk(10, [1.0] * 2)) == "BAD_STATE"   # not started
    d.link.request("SAMPLE_CHUNK", _chunk(0, x[:400]))
    # a gap, an overlap, a chunk past the end: out of order or outside
    assert _err(d, "SAMPLE_CHUNK", _chunk(401, x[401:500])) == "BAD_STATE"
    assert _err(d, "SAMPLE_CHUNK", _chunk(399, x[399:500])) == "BAD_STATE"
    assert _err(d, "SAMPLE_CHUNK", _chunk(400, [0.0] * (N - 399))) == "BAD_FIELD"
    # 400 staged: the final frame must carry exactly the other N - 400
    assert _err(d, "TRAIN_STREAM", _stream(x[401:])) == "BAD_STATE"
    assert _err(d, "TRAIN_STREAM", _stream(x[399:])) == "BAD_STATE"
    # rejected final frames leave the staged part as it was
    assert _err(d, "TRAIN_STREAM", _stream(x[400:], label=3)) == "MDY_ERR_LABEL"
    assert _err(d, "TRAIN_STREAM", _stream(x[400:], batch=0)) == "BAD_FIELD"
    assert _err(d, "TRAIN_STREAM", _stream(x[400:], lr=float("inf"))) == "BAD_FIELD"
    assert _err(d, "TRAIN_STREAM", _stream(x[400:], index=1)) == "BAD_FIELD"
    for (a, b), (c, e) in zip(w0, d.read_all_weights()):
        assert np.array_equal(a, c) and np.array_equal(b, e)
    d.link.request("SAMPLE_CHUNK", _chunk(400, x[400:700]))
    z_staged = L["LOGITS"].unpack(d.link.request("FORWARD", L["FORWARD"].pack(
        tail=x[700:].tolist()))[1])["logits"]
    assert np.array_equal(z_staged, d.forward(x))          # in one go by Device
    # FORWARD consumed it: the same end again is an incomplete sample
    assert _err(d, "FORWARD", L["FORWARD"].pack(tail=x[700:].tolist())) == "BAD_STATE"
    # offset 0 starts over: the junk staged first never reaches the engine
    d.link.request("SAMPLE_CHUNK", _chunk(0, -x[:500]))
    d.link.request("SAMPLE_CHUNK", _chunk(0, x[:500]))
    d.link.request("SAMPLE_CHUNK", _chunk(500, x[500:]))   # all of it staged
    z = L["LOGITS"].unpack(d.link.request("FORWARD", b"")[1])["logits"]
    assert np.array_equal(z, z_staged)
    assert d.ping(b"ok") == b"ok"


def test_retried_chunks_and_sample_apply_once(big):
    """A retry (same seq, same bytes) is answered from the cache: the chunk is
    not applied again and the sample does not train twice. The same chunk
    under a new seq is out of order."""
    xs, ys = samples(1, seed=4)
    x = xs[0].reshape(-1)
    ref = big()
    ref.set_selection([(0, 1)])
    sr = ref.train_stream(xs[0], int(ys[0]), index=0, count=1, batch=1, lr=0.3)

    d = big()
    d.set_selection([(0, 1)])
    link = d.link

    def twice(name, seq, payload):
        wire = encode_frame(spec.MSG[name], seq, payload)
        link.send_raw(wire)
        link.send_raw(wire)
        got = []
        while len(got) < 2:
            frames = link.receive(2.0)
            assert frames, "device did not answer"
            got += [f for f in frames if f.seq == seq]
        assert got[0] == got[1] and got[0].type == spec.MSG[spec.ANSWER[name]]
        return got[0]

    twice("SAMPLE_CHUNK", 900, _chunk(0, x[:500]))
    twice("SAMPLE_CHUNK", 901, _chunk(500, x[500:600]))
    assert _err(d, "SAMPLE_CHUNK", _chunk(500, x[500:600])) == "BAD_STATE"
    f = twice("TRAIN_STREAM", 902, _stream(x[600:], label=int(ys[0]), lr=0.3))
    st = L["STATS"].unpack(f.payload)
    assert (st["seen"], st["steps"]) == (1, 1)
    assert st["loss_sum"] == sr.loss_sum
    for (a, b), (c, e) in zip(ref.read_all_weights(), d.read_all_weights()):
        assert np.array_equal(a, c) and np.array_equal(b, e)


def test_chunked_stream_equals_epoch_on_the_small_model(device_process):
    """The small fixture's sample fits a frame; with frames limited to 64
    bytes it takes three SAMPLE_CHUNKs and a TRAIN_STREAM, and still
    reproduces RUN_EPOCH bit for bit."""
    x_tr, y_tr, *_ = learnable_data()
    sel = [(0, 0), (1, 1), (1, 2)]
    a, b = device_process().device(), device_process().device()
    b._limit = 64
    for d in (a, b):
        d.set_selection(sel)
    sa = a.run_epoch("train", 0, 24, batch=8, lr=0.3, seed=9)
    order = visit_order(0, 24, 9, 8)
    n0 = b.link.counters.requests
    for k, i in enumerate(order):
        sb = b.train_stream(x_tr[i], int(y_tr[i]), index=k, count=24, batch=8, lr=0.3,
                            nchw=True)
    assert b.link.counters.requests - n0 == 24 * 3       # 15 + 15 floats, then the last 2
    assert (sb.seen, sb.steps, sb.loss_sum) == (sa.seen, sa.steps, sa.loss_sum)
    for (wa, ba), (wb, bb) in zip(a.read_all_weights(), b.read_all_weights()):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)


def test_sample_of_the_wrong_size_is_refused_by_the_host(big):
    d = big()
    with pytest.raises(ValueError, match="768"):
        d.train_stream(np.zeros((4, 4, 2)), 0, index=0, count=1, batch=1, lr=0.1)
