"""Checkpoints are data: a crafted or damaged checkpoint given to --resume is
refused with an error naming what is wrong, and never runs code. Each case
mutates a real checkpoint of a short host session and resumes it."""
import io
import json
import shutil

import numpy as np
import pytest

from medyate.algo.trainer import HostEngineFactory
from medyate.data import bundled_model, load_task
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.planner.plan import TrainPlan, file_sha256
from medyate.session.checkpoint import CHECKPOINT, _content_sha256
from medyate.session.run import Progress, run_session


class Quiet(Progress):
    def __init__(self):
        self.live = False

    def line(self, text):
        pass


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=16, n_test=8)
    factory = HostEngineFactory(graph)
    layers = [s.name for s in factory.layers[-2:]]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=layers,
                     budget_elements=2000, batch=8, epochs=3, lr=0.01, warmup_epochs=0, seed=3)
    run = tmp_path_factory.mktemp("ckpt") / "run"
    run_session(graph, plan, task, factory, run, epochs=1, progress=Quiet())
    return graph, plan, task, factory, run


def _resume(session, tmp_path, mutate=None, plan=None, task=None):
    graph, plan0, task0, factory, run = session
    d = tmp_path / "run"
    shutil.copytree(run, d)
    if mutate is not None:
        mutate(d / CHECKPOINT)
    return run_session(graph, plan or plan0, task or task0, factory, d, epochs=2, resume=True,
                       progress=Quiet())


def _members(p):
    with np.load(p, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rewrite(p, change_meta=None, change_arrays=None, rehash=True):
    """Edit a checkpoint the way an attacker or a bug would, re-signing its
    content hash so that the field checks (not the hash) have to catch it."""
    a = _members(p)
    meta = json.loads(a.pop("meta").tobytes())
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(a)
    if rehash and isinstance(meta, dict):
        meta["content_sha256"] = _content_sha256(meta, a)
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **a)
    p.write_bytes(buf.getvalue())


def test_resume_of_an_intact_checkpoint_continues(session, tmp_path):
    s = _resume(session, tmp_path)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2] and s["epochs"] == 2


def _set(key, value):
    return lambda p: _rewrite(p, change_meta=lambda m: m.__setitem__(key, value))


def _flip_byte(p):
    raw = bytearray(p.read_bytes())
    # a byte inside the first weight array's data (not a zip header)
    z = _members(p)
    w = z["weight_0"].tobytes()
    at = bytes(raw).find(w[:64]) + 32
    raw[at] ^= 0x10
    p.write_bytes(bytes(raw))


def _flip_byte_keep_crc(p):
    """The same flip, but in a rewritten archive whose zip CRCs are right:
    only the content hash can tell."""
    def change(a):
        w = a["weight_0"].copy()
        w.reshape(-1)[5] = np.float32(w.reshape(-1)[5] * 1.5 + 0.25)
        a["weight_0"] = w
    _rewrite(p, change_arrays=change, rehash=False)


def _truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _wrong_shape(a):
    a["weight_0"] = a["weight_0"].reshape(-1)[:-1].copy()


def _missing_weight(a):
    del a["bias_1"]


def _pickle_payload(p):
    import pickle
    p.write_bytes(pickle.dumps({"epoch": 1}))


def _directory(p):
    p.unlink()
    p.mkdir()


def _npy_list(p):
    buf = io.BytesIO()
    np.save(buf, np.array([1, 2, 3]))
    p.write_bytes(buf.getvalue())


def _meta_list(p):
    _rewrite(p, change_meta=lambda m: None, rehash=False)
    a = _members(p)
    a["meta"] = np.frombuffer(b"[1, 2, 3]", np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **a)
    p.write_bytes(buf.getvalue())


def _no_meta(p):
    a = _members(p)
    del a["meta"]
    buf = io.BytesIO()
    np.savez(buf, **a)
    p.write_bytes(buf.getvalue())


def _object_array(p):
    a = _members(p)
    buf = io.BytesIO()
    np.savez(buf, **a, strategy_evil=np.array([{"x": 1}], dtype=object))
    p.write_bytes(buf.getvalue())


def _drop_meta_key(key):
    return lambda p: _rewrite(p, change_meta=lambda m: m.pop(key))


CASES = {
    "truncated": (_truncate, "not a readable checkpoint"),
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "random bytes": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
                     "not a readable checkpoint"),
    "a pickle": (_pickle_payload, "not a NumPy archive"),
    "an object array": (_object_array, "pickled Python objects"),
    "a directory": (_directory, "is a directory"),
    "a bare array": (_npy_list, "single array"),
    "meta a list": (_meta_list, "meta must be a JSON object"),
    "no meta": (_no_meta, "missing field meta"),
    "missing epoch": (_drop_meta_key("epoch"), r"epoch is required"),
    "missing rng": (_drop_meta_key("rng"), r"rng is required"),
    "epoch a string": (_set("epoch", "1"), r"epoch must be an integer .got .1.."),
    "epoch negative": (_set("epoch", -1), r"epoch must be at least 0 .got -1."),
    "epoch beyond history": (_set("epoch", 2), "history has 1 records for epoch 2"),
    "before NaN": (_set("before", {"test_loss": float("nan"), "test_acc": 0.5}),
                   r"non-finite value in before.test_loss"),
    "rng garbage": (_set("rng", {"bit_generator": "MT19937"}), r"rng.bit_generator"),
    "unknown field": (_set("evil", 1), r"evil is not a known field"),
    "lr_scale zero": (_set("lr_scale", 0.0), r"lr_scale must be greater than 0"),
    "weights wrong shape": (lambda p: _rewrite(p, change_arrays=_wrong_shape),
                            r"weight_0 \(.*\) is float32 \(\d+,\), expected float32"),
    "missing weights": (lambda p: _rewrite(p, change_arrays=_missing_weight),
                        "missing field bias_1"),
    "flipped byte": (_flip_byte, "Bad CRC-32 for file .weight_0.npy"),
    "flipped byte, zip CRC right": (_flip_byte_keep_crc, "content does not match content_sha256"),
    "energy wrong shape": (lambda p: _rewrite(p, change_arrays=lambda a: a.__setitem__(
        "strategy.energy_0", np.ones(3))), r"strategy.energy_0: expected \d+ floats"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_checkpoint_is_refused_naming_the_field(session, tmp_path, case):
    mutate, message = CASES[case]
    with pytest.raises(MedyateError, match=message):
        _resume(session, tmp_path, mutate)
    # nothing was changed: metrics still hold exactly the checkpointed epoch
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_plan_for_other_layers_is_refused(session, tmp_path):
    graph, plan, task, factory, _ = session
    other = TrainPlan(**{**plan.__dict__, "layers": [s.name for s in factory.layers[-3:-1]]})
    with pytest.raises(MedyateError, match="another plan: field.s. layers differ"):
        _resume(session, tmp_path, plan=other)


def test_other_model_is_refused(session, tmp_path):
    _, plan, _, _, _ = session
    other = TrainPlan(**{**plan.__dict__, "model_sha256": "0" * 64})
    with pytest.raises(MedyateError, match="belongs to another model"):
        _resume(session, tmp_path, plan=other)


def test_other_data_is_refused(session, tmp_path):
    other = load_task("fmnist-5to9", n_train=16, n_test=8, seed=1)
    with pytest.raises(MedyateError, match="trained on other data"):
        _resume(session, tmp_path, task=other)


def test_a_pickle_checkpoint_is_never_loaded(session, tmp_path):
    """The old format: a pickle that would write a file when loaded."""
    import os
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    def legacy(p):
        p.unlink()
        (p.parent / "checkpoint.pkl").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(MedyateError, match="not loaded because loading one can run code"):
        _resume(session, tmp_path, legacy)
    assert not marker.exists()
