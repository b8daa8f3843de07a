"""A whole MeDyate session in QEMU against the host simulation, bit for bit.

The importance-driven resampling is on, with a budget that holds only part of
the pre-selected channels, so every epoch's selection comes from the channel
statistics of the epoch before: a difference anywhere in the arithmetic
(kernels, exp/log, sums, what crosses the serial link) would show up as other
statistics, then other selections. Nothing is given a tolerance: the same
plan, data and seed must give the same selections, channel statistics,
losses, accuracies and trained weights on both.

Each test runs twice: on the bundled float model (fp32 path) and on the same
model quantized by onnxruntime (QDQ, calibrated on the task's training
samples) on the int8 path: int8 forward, STE backward and SGD on the int8
codes with stochastic rounding, whose random draws must be the same on both.
`-k int8` runs the int8 ones."""
import json
import shutil

import numpy as np
import pytest

from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx
from medyate.session.run import METRICS, Progress, run_session, split_validation

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and gcc-arm-none-eabi")

EPOCHS = 3


class Quiet(Progress):
    def __init__(self):
        self.live = False

    def line(self, text):
        pass


def _record(monkeypatch, cls, log):
    """Record what `cls` (an engine) is told to train and what it reports."""
    set_selection, train_epoch = cls.set_selection, cls.train_epoch

    def rec_set_selection(self, pairs):
        log.append({"selection": [(int(a), int(b)) for a, b in pairs]})
        return set_selection(self, pairs)

    def rec_train_epoch(self, *args, **kwargs):
        res = train_epoch(self, *args, **kwargs)
        log[-1]["stats"] = np.asarray(res.channel_stats, np.float32).tobytes()
        log[-1]["steps"] = int(res.steps)
        return res

    monkeypatch.setattr(cls, "set_selection", rec_set_selection)
    monkeypatch.setattr(cls, "train_epoch", rec_train_epoch)


def _task():
    return load_task("fmnist-5to9", n_train=72, n_test=40)


@pytest.fixture(scope="module", params=["fp32", "int8"])
def model(request, tmp_path_factory):
    """(precision, path of the model): mcunet-tiny as bundled, or quantized."""
    path = bundled_model("mcunet-tiny")
    if request.param == "int8":
        from medyate.ir.quantize import quantize_model
        dst = tmp_path_factory.mktemp("int8") / "mcunet-tiny-int8.onnx"
        quantize_model(path, dst, _task().x_train)
        path = dst
    return request.param, path


@pytest.fixture(scope="module")
def sessions(model, tmp_path_factory):
    from medyate.algo.plan import make_plan
    from medyate.algo.trainer import HostEngineFactory
    from medyate.engine.host import HostEngine
    from medyate.session.device_session import DeviceTrainer, device_session

    precision, path = model
    tmp = tmp_path_factory.mktemp("equality")
    graph = load_onnx(str(path))
    assert graph.is_quantized == (precision == "int8")
    task = _task()
    plan, _ = make_plan(path, graph, task, elements=3000, board="qemu-mps2-an500", batch=8,
                        epochs=EPOCHS, lr=0.05, seed=3, ranking_samples=32,
                        precision=precision, log=lambda s: None)
    assert plan.strategy == "medyate" and plan.precision == precision
    # a held-out split: its samples are not in the dataset image and stream
    task, val = split_validation(task, 0.1, plan.seed)
    logs = {"host": [], "qemu": []}
    with pytest.MonkeyPatch.context() as mp:
        _record(mp, DeviceTrainer, logs["qemu"])
        device_session(graph, plan, task, tmp / "qemu", board="qemu-mps2-an500", port=None,
                       epochs=EPOCHS, resume=False, progress=Quiet(), title="t", val=val)
    with pytest.MonkeyPatch.context() as mp:
        _record(mp, HostEngine, logs["host"])
        run_session(graph, plan, task, HostEngineFactory(graph, precision=precision),
                    tmp / "host", EPOCHS,
                    progress=Quiet(), val=val)
    metrics = {k: [json.loads(l) for l in (tmp / k / METRICS).read_text().splitlines()]
               for k in logs}
    return plan, graph, tmp, logs, metrics


def test_resampling_is_exercised(sessions):
    """The budget binds and the selection changes between epochs (otherwise
    this would test fixed selections)."""
    plan, graph, _, logs, _ = sessions
    from medyate.ir.cost import input_channels
    candidates = sum(int(input_channels(graph, graph.node(n))) for n in plan.layers)
    sels = [e["selection"] for e in logs["host"]]
    assert len(sels) == EPOCHS
    assert all(0 < len(s) < candidates for s in sels)
    assert len({tuple(s) for s in sels}) == EPOCHS


def test_same_selection_and_channel_statistics_every_epoch(sessions):
    _, _, _, logs, _ = sessions
    host, qemu = logs["host"], logs["qemu"]
    assert len(qemu) == len(host) == EPOCHS
    for k, (h, q) in enumerate(zip(host, qemu)):
        assert q["selection"] == h["selection"], f"epoch {k + 1}: selections differ"
        assert q["steps"] == h["steps"]
        assert q["stats"] == h["stats"], f"epoch {k + 1}: channel statistics differ"


def test_same_losses_and_accuracies_bit_for_bit(sessions):
    _, _, _, _, metrics = sessions
    keys = ("epoch", "lr", "loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc",
            "channels", "elements", "layers")
    assert len(metrics["qemu"]) == len(metrics["host"]) == EPOCHS
    for h, q in zip(metrics["host"], metrics["qemu"]):
        assert {k: q[k] for k in keys} == {k: h[k] for k in keys}


def test_same_trained_weights(sessions):
    _, _, tmp, _, _ = sessions
    gh = load_onnx(str(tmp / "host" / "finetuned.onnx"))
    gq = load_onnx(str(tmp / "qemu" / "finetuned.onnx"))
    for nh, nq in zip(gh.nodes, gq.nodes):
        assert nh.params.keys() == nq.params.keys()
        for k in nh.params:
            np.testing.assert_array_equal(nq.params[k], nh.params[k])
    for name in ("summary.json",):
        sh = json.loads((tmp / "host" / name).read_text())
        sq = json.loads((tmp / "qemu" / name).read_text())
        assert sq["before"] == sh["before"] and sq["after"] == sh["after"]


def test_the_trained_layers_moved(sessions):
    """Training changed the weights (the equalities above are not of two
    untouched models); on the int8 path the trained weights are still codes of
    the quantized model's frozen per-channel scales."""
    plan, graph, tmp, _, _ = sessions
    trained = load_onnx(str(tmp / "host" / "finetuned.onnx"))
    moved = 0
    for name in plan.layers:
        before, after = graph.node(name), trained.node(name)
        w = after.params["weight"]
        moved += int(np.count_nonzero(w != before.params["weight"]))
        if plan.precision == "int8":
            s = before.quant.weight_scale.astype(np.float32).reshape((-1,) + (1,) * (w.ndim - 1))
            codes = np.rint(w / s)
            assert np.all(np.abs(codes) <= 127)
            np.testing.assert_array_equal(codes.astype(np.float32) * s, w)
    assert moved > 0


class StopAfter(Quiet):
    """Stops the session after epoch `n`, as a Ctrl-C there would."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def line(self, text):
        if text.startswith(f"epoch {self.n}/"):
            raise KeyboardInterrupt


def test_a_resumed_session_is_the_uninterrupted_one(model, sessions):
    """Stop an int8 session after epoch 2 and resume it, on the host and in a
    fresh QEMU. Every epoch restarts the stochastic rounding's generator from
    the model hash and the epoch's seed (mdy_seed_rounding), so the resumed
    epoch 3 draws what the uninterrupted run drew: both resumed sessions end
    with the uninterrupted runs' metrics and weights, bit for bit. (The fp32
    path: tests/session/test_session_qemu.py.)"""
    if model[0] != "int8":
        pytest.skip("int8 only")
    from medyate.algo.trainer import HostEngineFactory
    from medyate.session.device_session import device_session
    plan, graph, tmp, _, metrics = sessions
    task, val = split_validation(_task(), 0.1, plan.seed)
    fw = tmp / "qemu" / "firmware"          # the same plan's: built once
    with pytest.raises(KeyboardInterrupt):
        device_session(graph, plan, task, tmp / "qemu-r", board="qemu-mps2-an500", port=None,
                       epochs=EPOCHS, resume=False, progress=StopAfter(2), title="t", val=val,
                       build_dir=fw)
    device_session(graph, plan, task, tmp / "qemu-r", board="qemu-mps2-an500", port=None,
                   epochs=EPOCHS, resume=True, progress=Quiet(), title="t", val=val,
                   build_dir=fw)
    factory = HostEngineFactory(graph, precision="int8")
    with pytest.raises(KeyboardInterrupt):
        run_session(graph, plan, task, factory, tmp / "host-r", EPOCHS, progress=StopAfter(2),
                    val=val)
    run_session(graph, plan, task, factory, tmp / "host-r", EPOCHS, resume=True,
                progress=Quiet(), val=val)
    keys = ("epoch", "lr", "loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc",
            "channels", "elements", "layers")
    m = {k: [json.loads(l) for l in (tmp / k / METRICS).read_text().splitlines()]
         for k in ("host-r", "qemu-r")}
    assert len(m["host-r"]) == len(m["qemu-r"]) == EPOCHS
    for h, q in zip(m["host-r"], m["qemu-r"]):
        assert {k: q[k] for k in keys} == {k: h[k] for k in keys}
    # the last completed epoch's weights, whichever epoch finetuned.onnx is
    ch, cq = np.load(tmp / "host-r" / "checkpoint.npz"), np.load(tmp / "qemu-r" / "checkpoint.npz")
    names = [k for k in ch.files if k.startswith(("weight_", "bias_"))]
    assert names and sorted(names) == sorted(k for k in cq.files if k.startswith(("weight_", "bias_")))
    for k in names:
        np.testing.assert_array_equal(cq[k], ch[k])
    # and they are the uninterrupted runs', the resumed epoch included
    for r, u in (("host-r", "host"), ("qemu-r", "qemu")):
        assert [{k: e[k] for k in keys} for e in m[r]] == \
            [{k: e[k] for k in keys} for e in metrics[u]], r
        cu = np.load(tmp / u / "checkpoint.npz")
        for k in names:
            np.testing.assert_array_equal(np.load(tmp / r / "checkpoint.npz")[k], cu[k], err_msg=k)
    assert m["host-r"][2]["loss"] < m["host-r"][1]["loss"]
