"""A device without a dataset image trains on 28x28 samples streamed over the
line: each 3136-byte sample is larger than a frame, so it goes in as a
SAMPLE_CHUNK and the TRAIN_STREAM (or FORWARD) with its last floats. QEMU runs
the firmware of mbv2-tiny; the epoch must match the host simulation of the
same plan and order, and the sample buffer must be what the planner counts."""
import shutil
import subprocess

import numpy as np
import pytest

from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and gcc-arm-none-eabi")

BOARD = "qemu-mps2-an500"
N_TRAIN, N_TEST, BATCH, LR, SEED = 16, 8, 8, 0.05, 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from medyate.planner.plan import TrainPlan, file_sha256
    from medyate.session.firmware import build_device_firmware
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=N_TRAIN, n_test=N_TEST)
    assert task.x_train.shape[1:] == (1, 28, 28)
    # No ranking needed to compare device and host: the last three layers.
    names = [n.name for n in graph.trainable_nodes()][-3:]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=names,
                     budget_elements=6000, train_bias=True, batch=BATCH, epochs=1, lr=LR,
                     seed=SEED)
    program, build = build_device_firmware(graph, plan, BOARD,
                                           tmp_path_factory.mktemp("stream28"),
                                           log=lambda *_: None)
    return graph, plan, task, program, build


def _selection(program, budget):
    pairs, used = [], 0
    for li in range(len(program.layers) - 1, -1, -1):
        l = program.layers[li]
        for ch in range(0, l.channels, 3)[:5]:      # a few channels of every layer
            if used + l.slice_size + l.map_size > budget:
                break
            pairs.append((li, ch))
            used += l.slice_size + l.map_size
    return sorted(pairs)


def test_streamed_28x28_epoch_matches_host(setup):
    from medyate.algo.strategies import data_order
    from medyate.engine.host import HostEngine
    from medyate.protocol.device import Device
    from medyate.protocol.link import Link
    from medyate.session.device_session import DeviceTrainer
    from medyate.session.qemu import QemuMachine
    graph, plan, task, program, build = setup
    pairs = _selection(program, plan.budget_elements)
    assert len({l for l, _ in pairs}) == 3
    order = data_order(N_TRAIN, SEED, 0, BATCH)

    with QemuMachine(build.elf, timeout=10) as m:      # no dataset image
        dev = Device(Link(m.serial, timeout=10.0))
        info = dev.info()
        assert not info.has_dataset and info.input_shape == (28, 28, 1)
        tr = DeviceTrainer(dev, program, task, {})
        assert tr.streaming
        tr.set_selection(pairs)
        before = dev.link.counters.requests
        ep = tr.train_epoch(task.x_train, task.y_train, BATCH, LR, order)
        # one SAMPLE_CHUNK + one TRAIN_STREAM per sample, one GET_STATS; then
        # the snapshot of the trained weights (READ_WEIGHTS pages) and one
        # GET_STATS that checks the device did not restart meanwhile
        snapshot = dev.link.counters.requests
        dev.read_all_weights()
        reads = dev.link.counters.requests - snapshot
        assert snapshot - before == 2 * N_TRAIN + 1 + reads + 1
        ev = tr.evaluate(task.x_test, task.y_test)
        w_dev = tr.weights()
        dev.shutdown()

    host = HostEngine(graph.copy(), trainable=plan.layers, budget_elements=plan.budget_elements,
                      train_bias=plan.train_bias)
    host.set_selection(pairs)
    ref = host.train_epoch(task.x_train, task.y_train, BATCH, LR, order=list(order))
    assert ep.steps == ref.steps == N_TRAIN // BATCH
    assert ep.loss == pytest.approx(ref.loss, rel=1e-5)
    assert ep.accuracy == pytest.approx(ref.accuracy)
    np.testing.assert_allclose(ep.channel_stats, ref.channel_stats, rtol=1e-4, atol=1e-9)
    w_host = host.weights()
    assert w_dev.keys() == w_host.keys()
    for name, (w, b) in w_host.items():
        np.testing.assert_allclose(w_dev[name][0], w, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(w_dev[name][1], b, rtol=1e-5, atol=1e-6, err_msg=name)
    # FORWARD of streamed samples gives the host's logits too
    h_loss, h_acc = host.evaluate(task.x_test, task.y_test)
    assert ev[0] == pytest.approx(h_loss, rel=1e-5) and ev[1] == pytest.approx(h_acc)


def test_sample_buffer_is_one_input_and_counted(setup):
    """The firmware's sample buffer is exactly one 28x28x1 input, and the
    image's static RAM beside arena and weights stays within the planner's
    bound for this model (fixed part + input bytes)."""
    from medyate.session.memory_report import memory_report
    from medyate.planner.footprint import device_overhead, input_bytes, ram_footprint
    _, _, _, program, build = setup
    syms = subprocess.run(["arm-none-eabi-nm", "-S", str(build.elf)], capture_output=True,
                          text=True, check=True).stdout.split("\n")
    sizes = {p[-1]: int(p[1], 16) for p in (s.split() for s in syms) if len(p) == 4}
    assert sizes["sample"] == 4 * 28 * 28 == input_bytes(program)
    mem = ram_footprint(program, BOARD)
    rep = memory_report(build.elf, board=BOARD)
    static = rep["ram"]["data"] + rep["ram"]["bss"] - mem["arena"] - mem["trainable_weights"]
    assert static <= mem["static"] == device_overhead(BOARD, program)["static"]
    assert static - sizes["sample"] <= device_overhead(BOARD, 0)["static"]
