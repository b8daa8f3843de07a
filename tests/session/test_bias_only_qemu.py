"""A plan with bias-only layers on QEMU: the image keeps their weights in
flash (its RAM is smaller by exactly those bytes than the image of the same
layers trainable), the device reports them with no channel and no weights to
read, refuses a selection naming one of their channels, and a session trains
them to the host simulation's numbers bit for bit, their weights untouched."""
import json
import shutil

import numpy as np
import pytest

from medyate.data import bundled_model, load_task
from medyate.ir.onnx_import import load_onnx
from medyate.session.run import METRICS, Progress, run_session

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and gcc-arm-none-eabi")

BOARD = "qemu-mps2-an500"
DW = "/features/features.5/body/body.3/Conv"
PW = "/features/features.7/body/body.0/Conv"
LAST = "/features/features.7/body/body.6/Conv"
HEAD = "/classifier/Gemm"
LAYERS = [DW, PW, LAST, HEAD]
BIAS_ONLY = [DW, PW]
EPOCHS = 2


class Quiet(Progress):
    def __init__(self):
        self.live = False

    def line(self, text):
        pass


def _frozen(program, name):
    """A layer's weights in real units and the IR's layout, from the program."""
    from medyate.engine.host import frozen_weight, to_onnx_layout
    layer = next(l for l in program.layers if l.name == name)
    return to_onnx_layout(program, layer.op, frozen_weight(program, layer))


def _task():
    return load_task("fmnist-5to9", n_train=40, n_test=16)


@pytest.fixture(scope="module", params=["fp32", "int8"])
def setup(request, tmp_path_factory):
    from medyate.planner.plan import TrainPlan, file_sha256
    precision = request.param
    tmp = tmp_path_factory.mktemp(f"bias-only-{precision}")
    path = bundled_model("mcunet-tiny")
    if precision == "int8":
        from medyate.ir.quantize import quantize_model
        quantize_model(path, tmp / "mcunet-tiny-int8.onnx", _task().x_train)
        path = tmp / "mcunet-tiny-int8.onnx"
    graph = load_onnx(str(path))
    # channels of LAST and HEAD only; layer indices follow LAYERS
    sel = [[2, c] for c in (0, 5, 9, 17)] + [[3, c] for c in range(0, 96, 8)]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=LAYERS,
                     budget_elements=2000, train_bias=True, bias_only=BIAS_ONLY,
                     strategy="fixed", selection=sel, batch=8, epochs=EPOCHS, lr=0.05,
                     seed=3, precision=precision)
    return precision, graph, plan, tmp


@pytest.fixture(scope="module")
def sessions(setup):
    from medyate.algo.trainer import HostEngineFactory
    from medyate.session.device_session import device_session
    precision, graph, plan, tmp = setup
    task = _task()
    device_session(graph, plan, task, tmp / "qemu", board=BOARD, port=None, epochs=EPOCHS,
                   resume=False, progress=Quiet(), title="t")
    run_session(graph, plan, task, HostEngineFactory(graph, precision=precision), tmp / "host",
                EPOCHS, progress=Quiet())
    return {k: [json.loads(l) for l in (tmp / k / METRICS).read_text().splitlines()]
            for k in ("host", "qemu")}


def test_same_losses_bit_for_bit(sessions):
    assert len(sessions["qemu"]) == len(sessions["host"]) == EPOCHS
    for h, q in zip(sessions["host"], sessions["qemu"]):
        for k in ("loss", "train_acc", "test_loss", "test_acc", "channels"):
            assert h[k] == q[k], k


def test_bias_trains_weights_stay(setup, sessions):
    _, graph, _, tmp = setup
    got = {k: load_onnx(str(tmp / k / "finetuned.onnx")) for k in ("host", "qemu")}
    for n in LAYERS:
        for p in ("weight", "bias"):
            np.testing.assert_array_equal(got["qemu"].node(n).params[p],
                                          got["host"].node(n).params[p], err_msg=f"{n} {p}")
    for n in BIAS_ONLY:
        np.testing.assert_array_equal(got["qemu"].node(n).params["weight"],
                                      graph.node(n).params["weight"])
        assert not np.array_equal(got["qemu"].node(n).params["bias"], graph.node(n).params["bias"])
    assert not np.array_equal(got["qemu"].node(LAST).params["weight"],
                              graph.node(LAST).params["weight"])


def test_image_keeps_the_weights_in_flash_and_refuses_their_channels(setup, sessions, tmp_path):
    import dataclasses

    from medyate.errors import MedyateError
    from medyate.planner import footprint
    from medyate.protocol.device import Device
    from medyate.protocol.link import DeviceError, Link
    from medyate.session.device_session import DeviceTrainer
    from medyate.session.firmware import build_device_firmware
    from medyate.session.memory_report import memory_report
    from medyate.session.qemu import QemuMachine
    precision, graph, plan, tmp = setup
    elf = tmp / "qemu" / "firmware" / "build" / "firmware.elf"
    plain = dataclasses.replace(plan, bias_only=[], strategy="fixed")
    prog_plain, build_plain = build_device_firmware(graph, plain, BOARD, tmp_path / "plain",
                                                    log=lambda *_: None)
    ram = memory_report(elf, board=BOARD)["ram"]
    ram_plain = memory_report(build_plain.elf, board=BOARD)["ram"]
    frozen = sum(footprint.layer_weight_bytes(prog_plain)[n] for n in BIAS_ONLY) - \
        sum(4 * graph.node(n).params["bias"].size for n in BIAS_ONLY)
    # .data holds the RAM copies; the frozen weights left it (the arena in
    # .bss may differ by the smaller selection area only)
    assert ram_plain["data"] - ram["data"] >= frozen > 0
    assert ram_plain["data"] + ram_plain["bss"] - ram["data"] - ram["bss"] >= frozen

    from medyate.planner.arena import plan_arena
    from medyate.planner.program import lower
    program = lower(graph.copy(), plan.layers, plan.train_bias, precision, plan.bias_only)
    plan_arena(program, plan.budget_elements)
    with QemuMachine(elf, timeout=10) as m:
        dev = Device(Link(m.serial, timeout=10.0))
        info = dev.info()
        for k, n in enumerate(LAYERS):
            out_c = graph.node(n).params["bias"].size
            if n in BIAS_ONLY:
                assert (info.layers[k].channels, info.layers[k].weight_count) == (0, 0)
                assert info.layers[k].train_bias and info.layers[k].bias_count == out_c
            else:
                assert info.layers[k].channels > 0 and info.layers[k].weight_count > 0
        dev.set_selection([(2, 0)])
        with pytest.raises(DeviceError, match="out of range"):
            dev.set_selection([(1, 0), (2, 0)])          # the device itself refuses
        assert dev.info(refresh=True).n_selected == 1     # the previous one stays
        tr = DeviceTrainer(dev, program, _task(), {})
        with pytest.raises(MedyateError, match=f"layer {PW}.*only its bias"):
            tr.set_selection([(1, 0), (2, 0)])
        # no weights of theirs to read: the session takes the plan's (the flash's)
        w = tr.weights()
        for n in BIAS_ONLY:
            np.testing.assert_array_equal(w[n][0], _frozen(program, n))
        tr.load_weights(w)                           # the bias goes back; the flash stays
        with pytest.raises(MedyateError, match=f"layer {DW} trains only its bias"):
            tr.load_weights({**w, DW: (w[DW][0] * 2, w[DW][1])})
        dev.shutdown()
