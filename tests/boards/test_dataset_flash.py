"""Training data on the board: a dataset image built into the .mdy_dataset
flash section (exact bytes, 1 MB limit checked at link time), the choice
between flash and streaming, and both ways run end to end in QEMU."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from medyate.boards import build_firmware
from medyate.codegen.dataset import DATASET_SOURCE, generate_dataset_source
from medyate.errors import MedyateError
from medyate.protocol.dataset_image import dataset_image_bytes, read_dataset_image
from medyate.session import dataset_placement as dp

from boards_testlib import APP, NO_ENGINE, needs_arm_gcc, needs_qemu

F746_FLASH = 1024 * 1024
N_TRAIN, N_TEST, BATCH, LR, SEED = 24, 16, 8, 0.05, 7


def _section_bytes(elf, tmp_path, name=".mdy_dataset") -> bytes:
    out = tmp_path / "section.bin"
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", f"--only-section={name}",
                    str(elf), str(out)], check=True)
    return out.read_bytes()


def _symbol(elf, name) -> int:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[-1] == name:
            return int(parts[0], 16)
    raise AssertionError(f"{name} not in {elf}")


def _fake_image(nbytes: int) -> bytes:
    """A valid image of about `nbytes` (zero samples of 1x28x28)."""
    n = max(1, nbytes // (28 * 28 * 4))
    return dataset_image_bytes(np.zeros((n, 1, 28, 28), np.float32), np.arange(n) % 5,
                               np.zeros((1, 1, 28, 28), np.float32), [0], classes=5)


# ----------------------------------------------------------------- choice
def test_choose_placement_at_the_flash_boundary():
    fw, m = 200_000, dp.FLASH_MARGIN
    fits = F746_FLASH - fw - m
    where, why = dp.choose_placement("nucleo-f746", fits, fw)
    assert where == "flash"
    assert f"firmware {fw} B" in why and f"dataset {fits} B" in why and f"{m} B" in why
    where, why = dp.choose_placement("nucleo-f746", fits + 1, fw)
    assert where == "stream" and "1 B too many" in why
    assert dp.choose_placement("nucleo-f746", 10_000_000, fw)[0] == "stream"
    assert dp.choose_placement("nucleo-f746", fits + m, fw, margin=0)[0] == "flash"
    assert dp.choose_placement("nucleo-f746", fits + m + 1, fw, margin=0)[0] == "stream"
    # QEMU's board has the F746's flash size; the host has no image to put data in
    assert dp.choose_placement("qemu-mps2-an500", fits, fw)[0] == "flash"
    assert dp.choose_placement("host", 100, 0)[0] == "stream"
    with pytest.raises(MedyateError):
        dp.choose_placement("nucleo-f746", 0, fw)


def test_generated_source_is_the_image(tmp_path):
    img = _fake_image(5000)
    src = generate_dataset_source(img, tmp_path).read_text()
    assert '__attribute__((section(".mdy_dataset"), aligned(16)' in src
    assert "mdy_dataset_image[MDY_DATASET_IMAGE_SIZE]" in src and f"{len(img)}u" in src
    with pytest.raises(ValueError, match="not a dataset image"):
        generate_dataset_source(b"\0" * 100, tmp_path)


# ----------------------------------------------------- link-time checks
@needs_arm_gcc
def test_test_app_images_find_the_flash_dataset(tmp_path):
    """board_dataset() on both boards: the linker's __mdy_dataset_start is the
    array, and the section holds exactly the image's bytes."""
    img = _fake_image(20_000)
    model = tmp_path / "model"
    generate_dataset_source(img, model)
    for board, origin in (("nucleo-f746", 0x08000000), ("qemu-mps2-an500", 0)):
        res = build_firmware(board, model, tmp_path / board, app_sources=[APP],
                             extra_defs=NO_ENGINE)
        assert res.sections[".mdy_dataset"] == len(img)
        start = _symbol(res.elf, "__mdy_dataset_start")
        assert start == _symbol(res.elf, "mdy_dataset_image") and start % 16 == 0
        assert origin <= start < origin + F746_FLASH
        assert _symbol(res.elf, "__mdy_dataset_end") - start == len(img)
        assert _section_bytes(res.elf, tmp_path) == img


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    from medyate.algo.plan import make_plan
    from medyate.data import bundled_model, load_task
    from medyate.ir.onnx_import import load_onnx
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=N_TRAIN, n_test=N_TEST)
    plan, _ = make_plan(path, graph, task, ram="160KiB", board="nucleo-f746", batch=BATCH,
                        epochs=2, lr=LR, seed=1, ranking_samples=16)
    tmp = tmp_path_factory.mktemp("dsflash")
    plan.save(tmp / "plan.json")
    image = dataset_image_bytes(task.x_train, task.y_train, task.x_test, task.y_test,
                                classes=task.n_classes)
    return graph, plan, task, image, tmp


def test_nucleo_image_with_embedded_dataset(planned, capsys):
    from medyate.session.firmware import build_with_data
    _, _, _, image, tmp = planned
    out = tmp / "nucleo"
    _, build, placement = build_with_data(tmp / "plan.json", "nucleo-f746", out,
                                          data="fmnist-5to9", n_train=N_TRAIN, n_test=N_TEST)
    assert placement.where == "flash"
    said = capsys.readouterr().out
    assert "training data: built into flash" in said and f"dataset {len(image)} B" in said
    assert build.sections[".mdy_dataset"] == len(image)
    got = _section_bytes(build.elf, tmp)
    assert got == image
    assert read_dataset_image(got)["n_train"] == N_TRAIN
    assert 0x08000000 <= _symbol(build.elf, "__mdy_dataset_start") < 0x08000000 + F746_FLASH
    # The raw image for flashing carries the dataset too.
    assert image in build.bin.read_bytes()
    # Built again without data: the dataset source is gone from the image.
    _, build, placement = build_with_data(tmp / "plan.json", "nucleo-f746", out)
    assert placement is None and build.sections.get(".mdy_dataset", 0) == 0
    assert not (out / "model" / DATASET_SOURCE).exists()


def test_too_large_dataset_fails_at_link_time(planned, monkeypatch):
    """Embedding chosen, the link still overflows: the build's clear message,
    the bytes over and the dataset named as the largest part."""
    from medyate.session.firmware import build_device_firmware
    graph, plan, _, _, tmp = planned
    out = tmp / "nucleo-big"
    _, build = build_device_firmware(graph, plan, "nucleo-f746", out, log=lambda *_: None)
    fw = dp.firmware_flash_bytes(build)
    big = _fake_image(F746_FLASH - fw + 50_000)
    assert dp.choose_placement("nucleo-f746", len(big), fw)[0] == "stream"
    said = []
    p = dp.place_dataset("nucleo-f746", out / "model", out / "build", big, build, log=said.append)
    assert p.where == "stream" and "streamed over serial" in said[0]
    monkeypatch.setattr(dp, "choose_placement", lambda *a, **k: ("flash", "forced"))
    with pytest.raises(MedyateError) as info:
        dp.place_dataset("nucleo-f746", out / "model", out / "build", big, build,
                         log=lambda *_: None)
    msg = str(info.value)
    assert "does not fit the nucleo-f746 board" in msg and "of 1048576" in msg
    over = int(msg.split("FLASH overflowed by ")[1].split()[0])
    assert abs(over - (fw + len(big) - F746_FLASH)) <= 64
    first_part = msg.split("largest parts in FLASH:")[1].splitlines()[1]
    assert str(len(big)) in first_part and "dataset" in first_part


def test_flash_cli_prints_the_decision(planned, tmp_path, capsys):
    from medyate.commands import flash
    _, _, _, _, tmp = planned
    code = flash.main(["--board", "nucleo-f746", "--plan", str(tmp / "plan.json"), "--data",
                       "fmnist-5to9", "--n-train", str(N_TRAIN), "--n-test", str(N_TEST),
                       "--out", str(tmp_path / "w"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "training data: built into flash" in out
    assert f"--data fmnist-5to9 --n-train {N_TRAIN} --n-test {N_TEST}" in out
    assert flash.main(["--board", "nucleo-f746", "--elf", "x.elf", "--data", "digits"]) == 1
    assert "--data needs --plan" in capsys.readouterr().err


# ------------------------------------------------------------------ QEMU
def _selection(program, budget):
    pairs, used = [], 0
    for li in range(len(program.layers) - 1, -1, -1):
        l = program.layers[li]
        for ch in range(l.channels):
            cost = l.slice_size + l.map_size
            if used + cost > budget or len(pairs) >= 12:
                break
            pairs.append((li, ch))
            used += cost
    return sorted(pairs)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """mbv2-tiny on 16x16 inputs: a sample (1 KB) fits one frame, so the same
    plan can be run from flash and streamed. (A 28x28 sample, 3136 B, is
    larger than a frame's 2048-byte payload.)"""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    import onnx
    from medyate.algo.plan import make_plan
    from medyate.data import bundled_model, load_task
    from medyate.ir.onnx_import import load_onnx
    tmp = tmp_path_factory.mktemp("dsqemu")
    m = onnx.load(str(bundled_model("mbv2-tiny")))
    for d in m.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_value = 16
    del m.graph.value_info[:]
    path = tmp / "mbv2-16.onnx"
    onnx.save(m, str(path))
    graph = load_onnx(str(path))
    task = load_task("fmnist-5to9", n_train=N_TRAIN, n_test=N_TEST)
    task.x_train = np.ascontiguousarray(task.x_train[:, :, 6:22, 6:22])
    task.x_test = np.ascontiguousarray(task.x_test[:, :, 6:22, 6:22])
    plan, _ = make_plan(path, graph, task, ram="160KiB", board="qemu-mps2-an500", batch=BATCH,
                        epochs=2, lr=LR, seed=1, ranking_samples=16)
    image = dataset_image_bytes(task.x_train, task.y_train, task.x_test, task.y_test,
                                classes=task.n_classes)
    return graph, plan, task, image, tmp


@pytest.fixture(scope="module")
def qemu_images(small):
    """The QEMU image for the plan without a dataset, and with it in flash."""
    from medyate.session.firmware import build_device_firmware
    graph, plan, _, image, tmp = small
    out = tmp / "qemu"
    program, build = build_device_firmware(graph, plan, "qemu-mps2-an500", out,
                                           log=lambda *_: None)
    bare = tmp / "bare.elf"
    shutil.copy(build.elf, bare)
    # Too many samples for flash, each small enough for a frame: streamed.
    said = []
    big = dataset_image_bytes(np.zeros((300, 1, 16, 16), np.float32), np.arange(300) % 5,
                              np.zeros((600, 1, 16, 16), np.float32), np.arange(600) % 5)
    p = dp.place_dataset("qemu-mps2-an500", out / "model", out / "build", big, build,
                         log=said.append)
    assert p.where == "stream" and p.build is build
    assert said[0].startswith("training data: streamed over serial") and "too many" in said[0]
    assert not (out / "model" / DATASET_SOURCE).exists()
    p = dp.place_dataset("qemu-mps2-an500", out / "model", out / "build", image, build,
                         log=said.append)
    assert p.embedded and said[1].startswith("training data: built into flash")
    return program, bare, p.build.elf


def _device(machine):
    from medyate.protocol.device import Device
    from medyate.protocol.link import Link
    return Device(Link(machine.serial, timeout=10.0))


@needs_qemu
def test_qemu_dataset_in_flash_and_streamed_epochs_agree(small, qemu_images):
    """No loader image: the device finds the samples in flash (INFO, RUN_EPOCH,
    EVALUATE); a device with no dataset at all runs the same epoch through
    DeviceTrainer's streaming path, with the same result."""
    from medyate.algo.strategies import data_order
    from medyate.session.device_session import DeviceTrainer
    from medyate.session.qemu import QemuMachine
    _, plan, task, _, _ = small
    program, bare, embedded = qemu_images
    pairs = _selection(program, plan.budget_elements)
    assert pairs
    order = data_order(N_TRAIN, SEED, 0, BATCH)

    with QemuMachine(embedded, timeout=10) as m:
        assert m.dataset is None
        dev = _device(m)
        info = dev.info()
        assert info.has_dataset and (info.n_train, info.n_test) == (N_TRAIN, N_TEST)
        tr = DeviceTrainer(dev, program, task, {})
        assert not tr.streaming
        tr.set_selection(pairs)
        flash_ep = tr.train_epoch(task.x_train, task.y_train, BATCH, LR, order)
        flash_eval = tr.evaluate(task.x_test, task.y_test)
        dev.shutdown()

    with QemuMachine(bare, timeout=10) as m:
        dev = _device(m)
        assert not dev.info().has_dataset
        tr = DeviceTrainer(dev, program, task, {})
        assert tr.streaming
        tr.set_selection(pairs)
        seen = []
        stream_ep = tr.train_epoch(task.x_train, task.y_train, BATCH, LR, order,
                                   progress=lambda d, t: seen.append((d, t)))
        stream_eval = tr.evaluate(task.x_test, task.y_test)
        dev.shutdown()

    assert seen[-1] == (N_TRAIN, N_TRAIN)
    assert flash_ep.steps == stream_ep.steps == N_TRAIN // BATCH
    assert np.isfinite(flash_ep.loss) and flash_ep.cycles > 0
    assert stream_ep.loss == pytest.approx(flash_ep.loss, rel=1e-5)
    assert stream_ep.accuracy == pytest.approx(flash_ep.accuracy)
    assert len(stream_ep.channel_stats) == len(flash_ep.channel_stats) == len(pairs)
    np.testing.assert_allclose(stream_ep.channel_stats, flash_ep.channel_stats, rtol=1e-4)
    assert stream_eval[0] == pytest.approx(flash_eval[0], rel=1e-4)
    assert stream_eval[1] == pytest.approx(flash_eval[1])
