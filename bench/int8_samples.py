#!/usr/bin/env python
"""What an int8 model's samples cost in transport: float32 samples (before:
the device quantized each one) against the input's int8 codes (the host
quantizes them with the runtime's mdy_input_from_f32), for mcunet-5fps
(3x128x128, int8, a new 5-class head, a MeDyate plan within 256 KiB):

- bytes per sample and of the dataset image of the task, and how many samples
  an image may hold in QEMU's 16 MiB dataset region and in the nucleo-f746's
  flash next to the firmware (dataset_placement's rules, real sizes);
- streamed training in QEMU without a dataset image: wall-clock samples per
  second, bytes written to the serial line per sample (frames, COBS and all)
  and requests per sample, the same samples sent as floats (TRAIN_STREAM,
  SAMPLE_CHUNK) and as codes (the _S8 requests), on the same firmware; the
  trained statistics must be bit-identical (same codes either way).

    PYTHONPATH=host .venv/bin/python bench/int8_samples.py     # about 10 minutes

Writes bench/results/int8_samples.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))

from medyate.algo.plan import make_plan  # noqa: E402
from medyate.boards import get_board  # noqa: E402
from medyate.data import load_task  # noqa: E402
from medyate.protocol.dataset_image import dataset_image_bytes, dataset_image_size  # noqa: E402
from medyate.session.dataset_placement import (choose_placement, device_samples,  # noqa: E402
                                               firmware_flash_bytes, region_holds, task_image)
from medyate.session.firmware import build_device_firmware  # noqa: E402
from medyate.session.model import load_for_task  # noqa: E402

MODEL = "mcunet-5fps"
TASK = "fmnist-5to9-rgb128"
BOARD = "qemu-mps2-an500"
FLASH_BOARD = "nucleo-f746"
RAM = "256KiB"
OUT = REPO / "bench" / "results"


class CountingPort:
    """A pyserial port that counts the bytes written to it."""

    def __init__(self, port):
        self.port, self.written = port, 0

    def write(self, data):
        self.written += len(data)
        return self.port.write(data)

    def __getattr__(self, name):
        return getattr(self.port, name)


def most_samples(fits, lo: int = 0, hi: int = 1 << 16) -> int:
    """The largest n with fits(n) (fits is monotone, fits(0) true)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def image_of(task, n: int, codes: bool) -> int:
    """Bytes of the image of n train samples (test split: 1 sample)."""
    elems = int(np.prod(task.x_train.shape[1:]))
    return dataset_image_size(n, 1, elems * (1 if codes else 4))


def stream(build, program, task, pairs, samples: int, codes: bool, batch: int, lr: float):
    from medyate.protocol.device import Device
    from medyate.protocol.link import Link
    from medyate.session.qemu import QemuMachine
    xs = device_samples(program, task.x_train[:samples]) if codes else task.x_train[:samples]
    with QemuMachine(build.elf, None, board=get_board(BOARD), timeout=30.0) as m:
        port = CountingPort(m.serial)
        dev = Device(Link(port, timeout=30.0))
        assert dev.info().input_s8 and not dev.info().has_dataset
        dev.set_selection(pairs)
        w0, r0 = port.written, dev.link.counters.requests
        t0 = time.perf_counter()
        for k in range(samples):
            dev.train_stream(xs[k], int(task.y_train[k]), index=k, count=samples, batch=batch,
                             lr=lr, nchw=True)
        seconds = time.perf_counter() - t0
        st = dev.get_stats()
        return {"samples": samples, "seconds": round(seconds, 2),
                "samples_per_s": samples / seconds,
                "wire_bytes_per_sample": (port.written - w0) / samples,
                "requests_per_sample": (dev.link.counters.requests - r0) / samples,
                "instructions_per_step": st.cycles_total / samples,
                "loss_sum": float(st.loss_sum), "channel_stats": st.channel_stats.tobytes().hex()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--samples", type=int, default=6, help="streamed samples per run")
    args = ap.parse_args()
    task = load_task(TASK, n_train=args.n_train, n_test=args.n_test, seed=0)
    path, graph, head = load_for_task(str(REPO / "models" / f"{MODEL}.onnx"), task=task, seed=0,
                                      log=lambda s: None)
    plan, _ = make_plan(path, graph, task, ram=RAM, board=BOARD, batch=8, epochs=1, lr=0.05,
                        ranking_samples=32, head=head, precision="int8", log=lambda s: None)
    row = {"model": MODEL, "task": TASK, "n_train": args.n_train, "n_test": args.n_test,
           "input": list(task.x_train.shape[1:]), "layers": plan.layers}
    with tempfile.TemporaryDirectory() as d:
        program, build = build_device_firmware(graph, plan, BOARD, Path(d) / "qemu",
                                               log=lambda s: None)
        _, fbuild = build_device_firmware(graph, plan, FLASH_BOARD, Path(d) / "flash",
                                          log=lambda s: None)
        elems = int(np.prod(task.x_train.shape[1:]))
        fw = firmware_flash_bytes(fbuild)
        before = len(dataset_image_bytes(task.x_train, task.y_train, task.x_test, task.y_test,
                                         classes=task.n_classes))
        after = len(task_image(program, task))
        # the size rule is the writer's own layout
        assert after == dataset_image_size(len(task.x_train), len(task.x_test), elems)
        assert before == dataset_image_size(len(task.x_train), len(task.x_test), 4 * elems)
        row["image"] = {
            "bytes_per_sample": {"fp32": 4 * elems, "int8": elems},
            "task_image_bytes": {"fp32": before, "int8": after},
            "qemu_region_bytes": get_board(BOARD).dataset_size,
            "qemu_region_samples": {k: most_samples(lambda n, c=c: region_holds(
                BOARD, image_of(task, n, c))) for k, c in (("fp32", False), ("int8", True))},
            "flash_board": FLASH_BOARD, "firmware_flash_bytes": fw,
            "flash_samples": {k: most_samples(lambda n, c=c: n == 0 or choose_placement(
                FLASH_BOARD, image_of(task, n, c), fw)[0] == "flash", hi=4096)
                for k, c in (("fp32", False), ("int8", True))},
        }
        print(json.dumps(row["image"]), flush=True)
        from medyate.engine.host import layer_spec
        pairs, used = [], 0
        for li in range(len(program.layers)):          # a few channels of every layer
            spec = layer_spec(program, li)
            for c in range(min(4, spec.channels)):
                if used + spec.cost <= plan.budget_elements:
                    pairs.append((li, c))
                    used += spec.cost
        row["selection"] = len(pairs)
        runs = {}
        for name, codes in (("fp32", False), ("int8", True)):
            runs[name] = stream(build, program, task, pairs, args.samples, codes, plan.batch,
                                plan.lr)
            print(name, json.dumps({k: v for k, v in runs[name].items() if k != "channel_stats"}),
                  flush=True)
        row["same_training"] = (runs["fp32"]["loss_sum"] == runs["int8"]["loss_sum"] and
                                runs["fp32"]["channel_stats"] == runs["int8"]["channel_stats"])
        for r in runs.values():
            del r["channel_stats"]
        row["stream"] = runs
    OUT.mkdir(exist_ok=True)
    (OUT / "int8_samples.json").write_text(json.dumps(row, indent=2) + "\n")
    (OUT / "int8_samples.md").write_text(report(row))
    print((OUT / "int8_samples.md").read_text())
    return 0


def report(r) -> str:
    im, s = r["image"], r["stream"]
    mb = lambda b: f"{b / 1e6:.2f} MB"  # noqa: E731
    lines = [
        f"# int8 samples: codes instead of floats ({r['model']}, {'x'.join(map(str, r['input']))})",
        "", "`PYTHONPATH=host .venv/bin/python bench/int8_samples.py`", "",
        f"Task {r['task']} ({r['n_train']} train / {r['n_test']} test), a MeDyate int8 plan "
        f"within {RAM} on {BOARD} ({len(r['layers'])} layers). *fp32*: samples as float32 "
        "(before: the image held floats, TRAIN_STREAM carried floats, the device quantized "
        "each with mdy_input_from_f32); *int8*: the input's codes, made on the host by the "
        "same C function through cffi and used by the device as they are.", "",
        "| | fp32 samples | int8 codes | ratio |", "|---|---|---|---|",
        f"| bytes per sample | {im['bytes_per_sample']['fp32']} | {im['bytes_per_sample']['int8']} | "
        f"{im['bytes_per_sample']['fp32'] / im['bytes_per_sample']['int8']:.2f} |",
        f"| dataset image of the task | {mb(im['task_image_bytes']['fp32'])} | "
        f"{mb(im['task_image_bytes']['int8'])} | "
        f"{im['task_image_bytes']['fp32'] / im['task_image_bytes']['int8']:.2f} |",
        f"| train samples an image may hold in QEMU's {im['qemu_region_bytes']} B region | "
        f"{im['qemu_region_samples']['fp32']} | {im['qemu_region_samples']['int8']} | "
        f"{im['qemu_region_samples']['int8'] / max(1, im['qemu_region_samples']['fp32']):.2f} |",
        f"| train samples in {im['flash_board']} flash beside the firmware "
        f"({im['firmware_flash_bytes']} B) | {im['flash_samples']['fp32']} | "
        f"{im['flash_samples']['int8']} | "
        + (f"{im['flash_samples']['int8'] / im['flash_samples']['fp32']:.2f}"
           if im['flash_samples']['fp32'] else "-") + " |",
        f"| streamed in QEMU: wire bytes per sample (host to device) | "
        f"{s['fp32']['wire_bytes_per_sample']:.0f} | {s['int8']['wire_bytes_per_sample']:.0f} | "
        f"{s['fp32']['wire_bytes_per_sample'] / s['int8']['wire_bytes_per_sample']:.2f} |",
        f"| streamed: requests per sample | {s['fp32']['requests_per_sample']:.0f} | "
        f"{s['int8']['requests_per_sample']:.0f} | "
        f"{s['fp32']['requests_per_sample'] / s['int8']['requests_per_sample']:.2f} |",
        f"| streamed: training samples per second (wall clock, {s['int8']['samples']} samples) | "
        f"{s['fp32']['samples_per_s']:.3f} | {s['int8']['samples_per_s']:.3f} | "
        f"{s['int8']['samples_per_s'] / s['fp32']['samples_per_s']:.2f} |",
        f"| streamed: wire bytes per epoch of {r['n_train']} samples | "
        f"{mb(s['fp32']['wire_bytes_per_sample'] * r['n_train'])} | "
        f"{mb(s['int8']['wire_bytes_per_sample'] * r['n_train'])} | |",
        f"| instructions per training step in QEMU | {s['fp32']['instructions_per_step'] / 1e6:.1f} M | "
        f"{s['int8']['instructions_per_step'] / 1e6:.1f} M | |",
        "", f"Same training from floats and from codes (loss sum and channel statistics bit "
        f"for bit): {'yes' if r['same_training'] else 'NO'}. The selection: {r['selection']} "
        "channels (a few of every planned layer). Instructions are the TRAIN_STREAM requests' "
        "(training step; the float column's quantization of all but the last frame's floats "
        "runs in SAMPLE_CHUNK, not counted); the wall clock is QEMU's serial line (about "
        "20 KiB/s host to device, docs/PROTOCOL.md) plus the training step, on a 2-core "
        "machine shared with other jobs (the fp32 run overlapped another QEMU process), so "
        "its ratio is rougher than the byte counts'.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
