"""An int8 model's samples travel as its input codes: the dataset image holds
1 byte per element and TRAIN_STREAM_S8 / SAMPLE_CHUNK_S8 / FORWARD_S8 carry
codes, which the host makes with the runtime's own mdy_input_from_f32. The
device (the firmware built for the host board: the device code and engine of
every board, as a native process) must train from codes exactly as from
floats it quantizes itself, whether the samples sit in a dataset image or are
streamed, and as the host engine does."""
import os
import subprocess

import numpy as np
import pytest

from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx

N_TRAIN, N_TEST, BATCH, LR, SEED = 24, 8, 8, 0.05, 4


def _task():
    return load_task("fmnist-5to9", n_train=N_TRAIN, n_test=N_TEST)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from medyate.ir.quantize import quantize_model
    from medyate.planner.plan import TrainPlan, file_sha256
    from medyate.protocol.dataset_image import write_dataset_image
    from medyate.session.dataset_placement import task_image
    from medyate.session.firmware import build_device_firmware
    tmp = tmp_path_factory.mktemp("int8-samples")
    task = _task()
    path = tmp / "mcunet-tiny-int8.onnx"
    quantize_model(bundled_model("mcunet-tiny"), path, task.x_train)
    graph = load_onnx(str(path))
    names = [n.name for n in graph.trainable_nodes()][-3:]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=names,
                     budget_elements=3000, train_bias=True, batch=BATCH, epochs=1, lr=LR,
                     seed=SEED, precision="int8")
    program, build = build_device_firmware(graph, plan, "host", tmp / "fw", log=lambda *_: None)
    codes = tmp / "codes.bin"
    codes.write_bytes(task_image(program, task))
    floats = write_dataset_image(tmp / "floats.bin", task.x_train, task.y_train, task.x_test,
                                 task.y_test, classes=task.n_classes)
    return dict(graph=graph, plan=plan, task=task, program=program, exe=build.elf,
                codes=codes, floats=floats, tmp=tmp)


class Native:
    """The native device program over pipes, with a dataset image or none."""

    def __init__(self, exe, dataset=None):
        from medyate.protocol.device import Device
        from medyate.protocol.link import Link
        from medyate.protocol.transport import PipeSerial
        env = dict(os.environ)
        env.pop("MEDYATE_DATASET", None)
        if dataset is not None:
            env["MEDYATE_DATASET"] = str(dataset)
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env)
        self.dev = Device(Link(PipeSerial(self.proc.stdout, self.proc.stdin, 0.05), timeout=5.0))

    def __enter__(self):
        return self.dev

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def _selection(program):
    pairs = []
    for li, l in enumerate(program.layers):
        pairs += [(li, c) for c in range(0, l.channels, 4)[:6]]
    return pairs


def _order():
    from medyate.algo.strategies import data_order
    return data_order(N_TRAIN, SEED, 0, BATCH)


def _outcome(dev, st, ev):
    """What a session keeps of an epoch: its statistics, the test loss and
    accuracy, and the trained weights (as bytes)."""
    return {"loss": st.loss, "correct": st.correct, "steps": st.steps,
            "stats": st.channel_stats.tobytes(), "eval": tuple(ev),
            "weights": [(w.tobytes(), b.tobytes()) for w, b in dev.read_all_weights()]}


def _epoch_from_image(exe, image, program):
    with Native(exe, image) as dev:
        info = dev.info()
        assert info.has_dataset and info.input_s8
        dev.set_selection(_selection(program))
        st = dev.run_epoch("train", batch=BATCH, lr=LR, seed=_order().seed)
        r = dev.evaluate("test")
        return _outcome(dev, st, (r.loss, r.accuracy))


def _epoch_streamed(exe, program, task, as_codes):
    """The epoch streamed (TRAIN_STREAM), the test split by FORWARD, as a
    session without a dataset image does; returns its outcome and how many
    requests the training samples took."""
    from medyate.engine.host import evaluate_logits
    from medyate.session.dataset_placement import device_samples
    x_train, x_test = task.x_train, task.x_test
    if as_codes:
        x_train, x_test = device_samples(program, x_train), device_samples(program, x_test)
        assert x_train.dtype == np.int8
    with Native(exe) as dev:
        assert not dev.info().has_dataset
        dev.set_selection(_selection(program))
        order = list(_order())
        sent = dev.link.counters.requests
        for k, i in enumerate(order):
            dev.train_stream(x_train[i], int(task.y_train[i]), index=k, count=len(order),
                             batch=BATCH, lr=LR, nchw=True, seed=_order().seed)
        requests = dev.link.counters.requests - sent
        st = dev.get_stats()
        ev = evaluate_logits(np.stack([dev.forward(x, nchw=True) for x in x_test]), task.y_test)
        return _outcome(dev, st, ev), requests


def test_int8_image_holds_one_byte_per_element(setup):
    from medyate.engine.host import input_codes
    from medyate.protocol import spec
    from medyate.protocol.dataset_image import read_dataset_image
    task, program = setup["task"], setup["program"]
    codes, floats = setup["codes"].read_bytes(), setup["floats"].read_bytes()
    img = read_dataset_image(codes)
    t = program.tensors[program.input]
    assert img["dtype"] == spec.DATASET_S8 and img["zero"] == t.zero
    assert np.float32(img["scale"]) == np.float32(t.scale)
    elems = int(np.prod(task.x_train.shape[1:]))
    assert img["x_train"].dtype == np.int8 and img["x_train"].shape == (N_TRAIN, 28, 28, 1)
    # every part at 1 byte per element (16-byte aligned), the whole a quarter or so
    hd = spec.DATASET_HEADER.unpack(codes[:spec.DATASET_HEADER_SIZE])
    assert hd["y_train"] - hd["x_train"] == -(-N_TRAIN * elems // 16) * 16
    assert hd["y_test"] - hd["x_test"] == -(-N_TEST * elems // 16) * 16
    assert len(codes) == img["total_size"] <= 64 + (N_TRAIN + N_TEST) * (elems + 1) + 4 * 16
    assert len(floats) > 3.9 * len(codes)
    # the runtime's quantization of the floats: within half a step of them
    np.testing.assert_array_equal(img["x_train"], input_codes(program, task.x_train)
                                  .transpose(0, 2, 3, 1))
    real = (img["x_test"].astype(np.float32) - t.zero) * np.float32(t.scale)
    x = task.x_test.transpose(0, 2, 3, 1)
    inside = (real > -128 - t.zero) & (np.abs(x) < 127 * t.scale)
    assert np.all(np.abs(real - x)[inside] <= t.scale / 2 * (1 + 1e-6))


def test_device_trains_alike_on_codes_and_floats(setup):
    """An epoch of RUN_EPOCH on the int8 image, on a float image the device
    quantizes, and streamed as codes and as floats: the same statistics,
    evaluation and weights bit for bit, and the host engine's too."""
    from medyate.engine.host import HostEngine
    exe, program, task = setup["exe"], setup["program"], setup["task"]
    codes = _epoch_from_image(exe, setup["codes"], program)
    floats = _epoch_from_image(exe, setup["floats"], program)
    assert codes == floats
    streamed_codes, n_codes = _epoch_streamed(exe, program, task, as_codes=True)
    streamed_floats, n_floats = _epoch_streamed(exe, program, task, as_codes=False)
    assert streamed_codes == streamed_floats == codes
    # a 784-element sample: one TRAIN_STREAM_S8 of codes, SAMPLE_CHUNK + TRAIN_STREAM of floats
    assert (n_codes, n_floats) == (N_TRAIN, 2 * N_TRAIN)
    assert codes["steps"] == N_TRAIN // BATCH and codes["stats"] != bytes(len(codes["stats"]))

    plan = setup["plan"]
    host = HostEngine(setup["graph"], plan.layers, plan.budget_elements, True, precision="int8")
    host.set_selection(_selection(program))
    res = host.train_epoch(task.x_train, task.y_train, BATCH, LR, order=_order())
    assert res.channel_stats.tobytes() == codes["stats"] and res.steps == codes["steps"]
    assert res.loss == codes["loss"]
    assert host.evaluate(task.x_test, task.y_test) == codes["eval"]


def test_codes_of_another_quantization_are_refused(setup):
    from medyate.protocol.dataset_image import dataset_image_bytes, read_dataset_image
    from medyate.protocol.link import DeviceError
    img = read_dataset_image(setup["codes"].read_bytes())
    task = setup["task"]
    for scale, zero in ((img["scale"] * 1.0001, img["zero"]), (img["scale"], img["zero"] + 1)):
        other = setup["tmp"] / "other.bin"
        other.write_bytes(dataset_image_bytes(img["x_train"].transpose(0, 3, 1, 2), task.y_train,
                                              img["x_test"].transpose(0, 3, 1, 2), task.y_test,
                                              classes=task.n_classes, input_quant=(scale, zero)))
        with Native(setup["exe"], other) as dev:
            assert not dev.info().has_dataset
            with pytest.raises(DeviceError) as e:
                dev.run_epoch("train", 0, 1, batch=1, lr=0.1)
            assert e.value.name == "DATASET_SHAPE"


def test_a_dataset_too_large_at_fp32_fits_qemu_as_int8():
    """The QEMU board's 16 MiB region: 120 samples of 3x128x128 do not fit as
    floats (23.6 MB) but do as codes (5.9 MB); the rule takes the real size."""
    from medyate.boards import get_board
    from medyate.protocol.dataset_image import dataset_image_bytes
    from medyate.session.dataset_placement import region_holds
    b = get_board("qemu-mps2-an500")
    x, y = np.zeros((120, 3, 128, 128), np.float32), np.arange(120) % 5
    f32 = len(dataset_image_bytes(x, y, x[:1], y[:1]))
    s8 = len(dataset_image_bytes(x.astype(np.int8), y, x[:1].astype(np.int8), y[:1],
                                 input_quant=(0.02, 0)))
    assert f32 > b.dataset_size >= s8 and f32 > 3.9 * s8
    assert not region_holds(b, f32) and region_holds(b, s8)
    assert region_holds(b, b.dataset_size) and not region_holds(b, b.dataset_size + 1)
