"""Host-side fuzz (hypothesis, bounded example counts): the frame reader, the
payload layouts, ONNX import, .npz task loading and plan.json loading. Any
input, however broken, gives the module's own error (FrameError / ValueError
for the wire, MedyateError for files) and never another exception."""
import io
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from medyate.data import bundled_model
from medyate.errors import MedyateError
from medyate.protocol import spec
from medyate.protocol.framing import Frame, FrameError, FrameReader, encode_frame

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _mutate(data: bytes, edits) -> bytes:
    """Apply (kind, position, byte) edits: flip, insert, delete, truncate."""
    b = bytearray(data)
    for kind, pos, val in edits:
        if not b:
            break
        i = pos % len(b)
        if kind == 0:
            b[i] ^= val or 1
        elif kind == 1:
            b.insert(i, val)
        elif kind == 2:
            del b[i]
        else:
            del b[i:]
    return bytes(b)


edits = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 30), st.integers(0, 255)),
                 max_size=6)
requests = st.sampled_from(sorted(spec.MSG))


@FAST
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 0xFFFF),
                          st.binary(max_size=300)), min_size=1, max_size=4),
       edits, st.integers(1, 64))
def test_frame_reader_on_mutated_streams(frames, ed, step):
    """Mutated valid frames, fed in arbitrary pieces: only Frames or
    FrameErrors come out, and a clean frame after the damage is recovered."""
    stream = _mutate(b"".join(encode_frame(t, s, p) for t, s, p in frames), ed)
    good = encode_frame(7, 42, b"after")
    reader = FrameReader()
    out = []
    data = stream + good
    for i in range(0, len(data), step):
        out += reader.feed(data[i:i + step])
    assert all(isinstance(x, (Frame, FrameError)) for x in out)
    assert out and isinstance(out[-1], Frame) and out[-1].payload == b"after"


@FAST
@given(requests, st.binary(max_size=600))
def test_payload_layouts_reject_with_value_error(name, payload):
    """Every message layout unpacks any bytes or says why not (ValueError)."""
    try:
        d = spec.LAYOUT[name].unpack(payload)
    except ValueError:
        return
    assert isinstance(d, dict)


_MODEL = bundled_model("mbv2-tiny").read_bytes()


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(edits)
def test_onnx_import_of_mutated_bytes(ed):
    """Mutated bytes of a bundled model load, or fail with MedyateError."""
    from medyate.ir.onnx_import import load_onnx
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.onnx")
        with open(p, "wb") as f:
            f.write(_mutate(_MODEL, ed))
        try:
            load_onnx(p)
        except MedyateError:
            pass


def _npz_bytes(arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


finite_or_not = st.sampled_from([0.0, 1.0, -3.5, float("nan"), float("inf"), -float("inf")])


@FAST
@given(n_train=st.integers(0, 3), n_test=st.integers(0, 3),
       shape=st.sampled_from([(1, 8, 8), (3, 4, 4), (8, 8), (1, 1, 1)]),
       value=finite_or_not, label=st.integers(-2, 12),
       drop=st.sampled_from([None, "x_train", "y_train", "x_test", "y_test"]),
       ydtype=st.sampled_from(["int64", "float32", "uint8"]), ed=edits)
def test_npz_loading_of_random_tasks(n_train, n_test, shape, value, label, drop, ydtype, ed):
    """Random and mutated .npz tasks load, or fail with MedyateError."""
    from medyate.data.user import load_npz
    arrays = {"x_train": np.full((n_train, *shape), value, np.float32),
              "y_train": np.full(n_train, label).astype(ydtype),
              "x_test": np.full((n_test, *shape), value, np.float32),
              "y_test": np.full(n_test, label).astype(ydtype)}
    if drop:
        del arrays[drop]
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.npz")
        with open(p, "wb") as f:
            f.write(_mutate(_npz_bytes(arrays), ed))
        try:
            load_npz(p)
        except MedyateError:
            pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=8)


@pytest.fixture(scope="module")
def plan_text(tmp_path_factory):
    from medyate.ir.onnx_import import load_onnx
    from medyate.planner.plan import TrainPlan, file_sha256
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-4:], budget_elements=5000)
    p = tmp_path_factory.mktemp("plan") / "plan.json"
    plan.save(p)
    return p.read_text()


def test_plan_loading_of_random_edits(plan_text):
    """plan.json with any field replaced by any JSON value (or its text
    mutated) loads or fails with MedyateError."""
    import json

    from medyate.planner.plan import load_plan
    base = json.loads(plan_text)

    @FAST
    @given(st.sampled_from(sorted(base) + ["unknown_field"]), json_values, edits, st.booleans())
    def check(key, value, ed, raw):
        doc = dict(base)
        doc[key] = value
        text = json.dumps(doc)
        if raw:
            text = _mutate(plan_text.encode(), ed).decode("latin-1")
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "plan.json")
            with open(p, "w", encoding="latin-1") as f:
                f.write(text)
            try:
                load_plan(p)
            except MedyateError:
                pass
    check()
