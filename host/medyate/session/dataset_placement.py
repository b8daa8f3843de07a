"""Where a board's training samples live: built into flash next to the model,
or streamed over serial with each training step; and what they are.

    device_samples(program, x) -> the samples as a device takes them
    task_image(program, task) -> the bytes of the task's dataset image
    choose_placement(board, image_bytes_len, firmware_flash_bytes) -> (where, reason)
    place_dataset(board, model_dir, build_dir, image, build, log) -> Placement

An int8 model's samples are its input's int8 codes, made on the host by the
runtime's mdy_input_from_f32 (engine.host.input_codes): the dataset image and
every streamed sample take 1 byte per element instead of 4, and the device
uses them as they are. An fp32 model's are float32.

Flash is the fast way (RUN_EPOCH and EVALUATE read the samples in place and an
epoch is one request), but the NUCLEO-F746ZG has 1 MB for firmware and data
together. A dataset that does not fit is streamed instead: TRAIN_STREAM and
FORWARD carry one sample each (split over several frames when it is larger
than one), so any number of samples works, only slower.
The choice is made from the firmware's real flash size (a build without the
dataset), then the image is linked into the board's .mdy_dataset section, so
the linker still checks the 1 MB limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MedyateError

FLASH = "flash"
STREAM = "stream"
# Bytes of flash left free when embedding. The firmware's size is measured
# without the dataset; linking the image in adds alignment padding (the
# section is 16-byte aligned, the sections after it word-aligned), and the
# margin keeps a later small change to the firmware from breaking the link of
# an image chosen to fit exactly.
FLASH_MARGIN = 4096


@dataclass
class Placement:
    where: str                 # FLASH or STREAM
    reason: str
    image_bytes: int
    firmware_flash_bytes: int
    build: object = None       # the BuildResult of the image to flash

    @property
    def embedded(self) -> bool:
        return self.where == FLASH

    def describe(self) -> str:
        how = ("built into flash (.mdy_dataset)" if self.embedded
               else "streamed over serial (each sample in SAMPLE_CHUNK frames, then "
                                 "TRAIN_STREAM/FORWARD)")
        return f"training data: {how}: {self.reason}"


def device_samples(program, x):
    """Float samples `x` (NCHW) as a device of `program` takes them: unchanged
    for an fp32 input, the int8 input's codes (same shape) for an int8 one."""
    from ..engine.host import input_codes
    from ..planner.program import S8
    return input_codes(program, x) if program.tensors[program.input].dtype == S8 else x


def task_image(program, task) -> bytes:
    """The dataset image (protocol.dataset_image) of a task's train and test
    splits for `program`: float32 samples, or an int8 input's codes with the
    scale and zero point the device checks them against."""
    from ..planner.program import S8
    from ..protocol.dataset_image import dataset_image_bytes
    t = program.tensors[program.input]
    quant = (float(t.scale), int(t.zero)) if t.dtype == S8 else None
    return dataset_image_bytes(device_samples(program, task.x_train), task.y_train,
                               device_samples(program, task.x_test), task.y_test,
                               classes=task.n_classes, input_quant=quant)


def region_holds(board, image_bytes_len: int) -> bool:
    """True if an emulated board's dataset region (QEMU's 16 MiB PSRAM) holds
    an image of this many bytes (a board without a stated region: any)."""
    from ..boards import get_board
    size = get_board(board).dataset_size
    return size is None or int(image_bytes_len) <= size


def choose_placement(board, image_bytes_len: int, firmware_flash_bytes: int,
                     margin: int = FLASH_MARGIN) -> tuple[str, str]:
    """("flash", reason) if firmware + dataset + margin fit the board's flash,
    else ("stream", reason); the reason gives the bytes."""
    from ..boards import get_board
    b = get_board(board)
    image, fw = int(image_bytes_len), int(firmware_flash_bytes)
    if image <= 0:
        raise MedyateError("empty dataset image")
    if b.is_native or not b.flash:
        return STREAM, f"board {b.name} has no flash image to hold the samples"
    total = fw + image
    if total + margin <= b.flash:
        return FLASH, (f"firmware {fw} B + dataset {image} B = {total} B of {b.flash} B flash "
                       f"({b.flash - total} B free, at least {margin} B kept as margin)")
    over = total + margin - b.flash
    return STREAM, (f"firmware {fw} B + dataset {image} B = {total} B does not fit {b.flash} B "
                    f"flash with a {margin} B margin ({over} B too many)")


def firmware_flash_bytes(build) -> int:
    """Flash used by a built image (code, constants, weights, .data's load
    copy), without any dataset section."""
    from .memory_report import FLASH_SECTIONS
    s = build.sections or {}
    return sum(v for k, v in s.items() if k in FLASH_SECTIONS and k != ".mdy_dataset") + \
        s.get(".data", 0)


def place_dataset(board, model_dir, build_dir, image: bytes, build, log=print,
                  margin: int = FLASH_MARGIN) -> Placement:
    """Decide for `image` next to `build` (built from `model_dir` into
    `build_dir` without a dataset), say which, and if it is flash, rebuild with
    the image linked in. An image that still does not link raises the
    build's overflow error (region, bytes over, largest parts)."""
    from ..boards import build_firmware, get_board
    from ..codegen.dataset import generate_dataset_source, remove_dataset_source
    b = get_board(board)
    if b.is_native:
        raise MedyateError("--board host keeps its samples in host memory; a dataset is built "
                           "into the image only for device boards")
    fw = firmware_flash_bytes(build)
    where, reason = choose_placement(b, len(image), fw, margin)
    p = Placement(where, reason, len(image), fw, build)
    log(p.describe())
    if p.embedded:
        generate_dataset_source(image, model_dir)
        p.build = build_firmware(b, model_dir, build_dir)
        got = p.build.sections.get(".mdy_dataset", 0)
        if got != len(image):
            raise MedyateError(f"the image's .mdy_dataset section holds {got} bytes, "
                               f"the dataset {len(image)}")
    elif remove_dataset_source(Path(model_dir)):
        p.build = build_firmware(b, model_dir, build_dir)
    return p
