"""The training session on a device: build the firmware for the plan, start
QEMU (or open a real device's port), and drive the same session loop as the
host simulation through a `DeviceTrainer`, which speaks the serial protocol.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MedyateError


@dataclass
class DeviceEpoch:
    loss: float
    accuracy: float
    steps: int
    channel_stats: np.ndarray
    cycles: int
    stack_high_water: int
    cycles_forward: int
    cycles_backward: int
    cycles_update: int
    nonfinite: int = 0        # NaN/inf losses + SGD steps with a NaN/inf gradient
    # what `cycles` counts (boards.Board.counter_unit): the metrics field's name
    counter: str = "cycles"


class DeviceTrainer:
    """The algorithm's Trainer interface over a device. Samples live in the
    device's dataset image (train and test splits of `task`, same indices) or,
    without one, are streamed in the frames (an int8 model's as its input
    codes, 1 byte per element)."""

    def __init__(self, device, program, task, memory: dict, counter: str = "cycles"):
        from ..engine.host import layer_spec
        self.device, self.program, self.task, self._memory = device, program, task, memory
        self.counter = counter
        info = device.info()
        want = program.hash32(program.memory.budget_elements)
        if info.model_hash != want:
            raise MedyateError(f"the device runs another model or plan (hash {info.model_hash:#010x},"
                               f" expected {want:#010x}): build and flash the firmware for this plan")
        if [(l.channels, l.slice_size, l.map_size) for l in info.layers] != \
                [(l.channels, l.slice_size, l.map_size) for l in program.layers]:
            raise MedyateError("the device's layer table does not match the plan")
        self.streaming = not info.has_dataset
        if self.streaming:
            # A sample of any size streams (SAMPLE_CHUNK frames, then
            # TRAIN_STREAM or FORWARD); the logits of FORWARD come back in one
            # frame, so only a model with more classes than that cannot stream.
            from ..protocol import spec
            fit = spec.LAYOUT["LOGITS"].max_tail(info.max_payload)
            if info.classes > fit:
                raise MedyateError(
                    f"the device has no dataset image and the model's {info.classes} logits do "
                    f"not fit one frame (at most {fit}): build the dataset into flash "
                    "(medyate-flash --plan ... --data ...)")
        if not self.streaming and (info.n_train != len(task.x_train) or
                                   info.n_test != len(task.x_test)):
            raise MedyateError(f"the device's dataset has {info.n_train}/{info.n_test} samples, "
                               f"the task {len(task.x_train)}/{len(task.x_test)}")
        self.info = info
        self._sent: dict = {}
        self.layers = [layer_spec(program, i) for i in range(len(program.layers))]
        self.on_progress = None
        self.n_selected = 0
        self.pairs: list = []
        self.resets = 0
        # Weights (runtime layout) as of the last completed epoch: what the
        # session has checkpointed, and what a device that restarted gets back.
        self._good_weights = None

    # A restarted device (power glitch, watchdog, a board reset) comes back
    # with its flash weights and no selection. The host notices the selection
    # is gone, writes back the weights of the last completed epoch (kept on
    # the host after every epoch, as the checkpoint) and the selection, and
    # redoes the epoch: a reset loses at most the epoch in progress. (A plan
    # that trains biases only has no selection to notice a restart by.)
    def _device_kept_state(self) -> bool:
        return self.device.get_stats().n_selected == self.n_selected

    def _recover(self) -> None:
        self.resets += 1
        if self.resets > 5:
            raise MedyateError("the device keeps restarting: giving up (see its serial output)")
        if self._good_weights is not None:
            self.device.write_all_weights(self._good_weights)
        self.device.set_selection(self.pairs)

    def set_selection(self, pairs) -> None:
        if self.n_selected and not self._device_kept_state():
            self._recover()
        pairs = [(int(a), int(b)) for a, b in pairs]
        self.program.check_selection(pairs)
        self.pairs = pairs
        self.device.set_selection(self.pairs)
        self.n_selected = len(self.pairs)

    def _samples(self, x):
        """What goes over the line for the float samples `x`: themselves, or
        an int8 model's codes (made once per array: dataset_placement.device_samples)."""
        from .dataset_placement import device_samples
        got = self._sent.get(id(x))
        if got is None or got[0] is not x:
            got = self._sent[id(x)] = (x, device_samples(self.program, x))
        return got[1]

    def _split(self, x) -> str:
        if x is self.task.x_train:
            return "train"
        if x is self.task.x_test:
            return "test"
        raise MedyateError("a device trains and evaluates only on the task it was given")

    def train_epoch(self, x, y, batch, lr, order, progress=None) -> DeviceEpoch:
        while True:
            st = self._run_epoch(x, y, batch, lr, order, progress)
            if st.n_selected == self.n_selected:
                # snapshot the trained weights, then make sure they are the
                # epoch's (not a restarted device's)
                flat = self.device.read_all_weights()
                if not self.n_selected or self._device_kept_state():
                    self._good_weights = flat
                    break
            self._recover()        # restarted during the epoch: redo it
        return DeviceEpoch(st.loss, st.accuracy, st.steps, st.channel_stats[:self.n_selected],
                           st.cycles_total, st.stack_high_water, st.cycles_forward,
                           st.cycles_backward, st.cycles_update, st.nonfinite, self.counter)

    def _run_epoch(self, x, y, batch, lr, order, progress):
        self.on_progress = progress
        seed = getattr(order, "seed", None)
        if seed is None:
            raise MedyateError("device epochs need a seeded order (algo.strategies.data_order)")
        if self.streaming:
            # The device's runtime places mini-batch ends and SGD steps from
            # each sample's position, as in RUN_EPOCH.
            order = list(order)
            n = len(order)
            xs = self._samples(x)
            for k, i in enumerate(order):
                self.device.train_stream(xs[i], int(y[i]), index=k, count=n, batch=batch, lr=lr,
                                         nchw=True, seed=seed)
                if progress and ((k + 1) % batch == 0 or k + 1 == n):
                    progress(k + 1, n)
            st = self.device.get_stats()
        else:
            st = self.device.run_epoch(self._split(x), 0, len(order), batch=batch, lr=lr, seed=seed)
        self.on_progress = None
        return st

    def evaluate(self, x, y) -> tuple[float, float]:
        if self.streaming or not (x is self.task.x_train or x is self.task.x_test):
            # samples outside the dataset image (e.g. a validation split) stream;
            # their logits are taken as EVALUATE takes them, to the same bits
            from ..engine.host import evaluate_logits
            return evaluate_logits(np.stack([self.device.forward(xi, nchw=True)
                                             for xi in self._samples(x)]), y)
        while True:
            r = self.device.evaluate(self._split(x))
            if not self.n_selected or self._device_kept_state():
                return r.loss, r.accuracy
            self._recover()        # evaluated restarted (flash) weights: again

    def weights(self) -> dict:
        from ..engine.host import frozen_weight, to_onnx_layout
        if self._good_weights is None:
            self._good_weights = self.device.read_all_weights()
        # a bias-only layer has no weights to read (its LAYERS weight count is
        # 0): they are in flash, the plan's own
        return {l.name: (to_onnx_layout(self.program, l.op,
                                        frozen_weight(self.program, l) if l.bias_only else w),
                         np.asarray(b, np.float32))
                for l, (w, b) in zip(self.program.layers, self._good_weights)}

    def load_weights(self, weights: dict) -> None:
        from ..engine.host import check_frozen_weight, from_onnx_layout
        flat = []
        for l in self.program.layers:
            w, b = weights[l.name]
            w = from_onnx_layout(self.program, l.op, np.asarray(w, np.float32)).ravel()
            if l.bias_only:         # flash: nothing to write
                check_frozen_weight(self.program, l, w)
                w = np.zeros(0, np.float32)
            flat.append((w, np.asarray(b, np.float32)))
        self.device.write_all_weights(flat)
        self._good_weights = flat

    def memory(self) -> dict:
        return dict(self._memory)


class DeviceFactory:
    """The engine factory of a session on a device: the firmware is built for
    one plan, so the strategy must ask for exactly that."""

    def __init__(self, trainer: DeviceTrainer, plan):
        from ..engine.host import layer_spec
        self.trainer, self.plan = trainer, plan
        self.layers = [layer_spec(trainer.program, i)
                       for i in range(len(trainer.program.layers))]

    def __call__(self, trainable, budget_elements, train_bias, bias_only=()):
        if list(trainable) != list(self.plan.layers) or int(budget_elements) != \
                self.plan.budget_elements or bool(train_bias) != self.plan.train_bias or \
                sorted(bias_only) != sorted(getattr(self.plan, "bias_only", ())):
            raise MedyateError("the strategy asks for layers or a budget the firmware was not "
                               "built for")
        return self.trainer


def _open_port(port: str, baud: int):
    import serial
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=2.0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise MedyateError(f"cannot open {port}: {exc}") from None


def device_session(graph, plan, task, out, *, board: str, port: str | None, epochs,
                   resume: bool, progress, title: str, build_dir=None, val=None,
                   frame_size: int | None = None, retries: int = 5,
                   record: dict[str, str] | None = None) -> dict:
    """The session on a device, in RUN/ (`out`): a run directory this call
    created is removed again if it fails before its first checkpoint.
    `record` as for `run.run_session`."""
    from ..outputs import output_dir
    from .run import CHECKPOINT, SUMMARY
    out = Path(out)
    with output_dir(out, "run directory",
                    keep=lambda: (out / CHECKPOINT).exists() or (out / SUMMARY).exists()):
        return _device_session(graph, plan, task, out, board=board, port=port, epochs=epochs,
                               resume=resume, progress=progress, title=title,
                               build_dir=build_dir, val=val, frame_size=frame_size,
                               retries=retries, record=record)


def _device_session(graph, plan, task, out, *, board: str, port: str | None, epochs,
                    resume: bool, progress, title: str, build_dir=None, val=None,
                    frame_size: int | None = None, retries: int = 5, record=None) -> dict:
    from ..boards import get_board
    from ..planner.footprint import ram_footprint
    from ..protocol.device import Device
    from ..protocol.link import Link
    from .dataset_placement import region_holds, task_image
    from .firmware import build_device_firmware
    from .memory_report import memory_report
    from .qemu import QemuMachine
    from .run import run_session

    b = get_board(board)
    if b.is_native:
        raise MedyateError("--board host runs the host simulation; pick a device board")
    build_dir = Path(build_dir) if build_dir else out / "firmware"
    program, build = build_device_firmware(graph, plan, board, build_dir, log=progress.line)
    rep = memory_report(build.elf, board=board)
    mem = ram_footprint(program, board)
    mem["image_ram"] = rep["ram"]["total"]
    progress.line(f"firmware: flash {rep['flash']['total']} B, RAM {rep['ram']['total']} B "
                  f"(of {rep['ram']['capacity']} B)")

    with contextlib.ExitStack() as stack:
        if port:
            ser = _open_port(port, int(b.serial_baud))
            stack.callback(ser.close)
            reopen = lambda: _open_port(port, int(b.serial_baud))  # noqa: E731
        else:
            if not b.is_emulated:
                raise MedyateError(f"{board} is real hardware: flash it (medyate-flash) and give "
                                   "--port")
            blob = task_image(program, task)
            image = None
            if not region_holds(b, len(blob)):
                # larger than the region QEMU loads it into: the samples are streamed
                progress.line(f"training data: streamed over serial: the dataset image "
                              f"({len(blob)} B) exceeds the board's dataset region "
                              f"({b.dataset_size} B)")
            else:
                image = out / "dataset.bin"
                image.write_bytes(blob)
            qemu = QemuMachine(build.elf, image, board=b, timeout=2.0).start()
            stack.callback(qemu.close)
            ser, reopen = qemu.serial, None
        trainer_box: list = []

        def on_progress(p: dict) -> None:
            if trainer_box and trainer_box[0].on_progress:
                trainer_box[0].on_progress(int(p["done"]), int(p["total"]))

        link = Link(ser, timeout=5.0, retries=retries, reconnect=reopen,
                    on_progress=on_progress)
        device = Device(link, max_payload=frame_size)
        trainer = DeviceTrainer(device, program, task, mem, counter=b.counter_unit)
        trainer_box.append(trainer)
        stack.callback(lambda: _quiet(device.shutdown))
        summary = run_session(graph, plan, task, DeviceFactory(trainer, plan), out, epochs,
                              resume=resume, progress=progress, title=f"{title} ({board})",
                              val=val, board=board, record=record)
    summary["firmware"] = {"flash": rep["flash"]["total"], "ram": rep["ram"]["total"],
                           "ram_capacity": rep["ram"]["capacity"]}
    from ..outputs import atomic_write
    atomic_write(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n",
                 "summary")
    return summary


def _quiet(fn) -> None:
    try:
        fn()
    except Exception:  # the device may already be gone; QEMU is stopped anyway
        pass
