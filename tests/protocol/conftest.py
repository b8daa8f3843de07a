"""Builds of the device code for the host, and a running device process.

The device binary is the real firmware/src/device code with the real engine
(kernels + runtime) and the native board (boards/host), linked with a tiny
hand-written model (fixture_model.c; fixture_big_model.c has an input larger
than a frame) and built with AddressSanitizer and UBSan, so any out-of-bounds
access or undefined behaviour a malformed frame could trigger aborts the
process and fails the test. Each model gets the model_config.h the code
generator would write (the device sizes its sample buffer from it).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medyate.engine.build import kernel_selection, kernel_sources
from medyate.protocol import Device, Link, PipeSerial
from medyate.protocol.dataset_image import write_dataset_image

from protocol_helpers import learnable_data, model_config

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FW = REPO / "firmware"
CC = os.environ.get("CC", "cc")
CFLAGS = ["-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing",
          "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
          f"-I{FW / 'include'}", f"-I{FW / 'src' / 'device'}"]
SAN_ENV = {"ASAN_OPTIONS": "halt_on_error=1:detect_leaks=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


def _build(name: str, sources: list[Path], out_dir: Path, include: list[Path] = ()) -> Path:
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    headers = [f for d in include for f in sorted(d.glob("*.h"))]
    for f in sorted(sources) + sorted((FW / "include").glob("*.h")) + \
            sorted((FW / "src").rglob("*.h")) + headers:
        h.update(str(f).encode())
        h.update(f.read_bytes())
    exe = out_dir / f"{name}-{h.hexdigest()[:12]}"
    if not exe.exists():
        tmp = exe.with_suffix(".tmp")
        r = subprocess.run([CC, *CFLAGS, *[f"-I{d}" for d in include], *map(str, sources),
                            "-lm", "-o", str(tmp)], capture_output=True, text=True)
        if r.returncode:
            pytest.fail(f"building {name} failed:\n{r.stderr}")
        tmp.rename(exe)
    return exe


def device_sources(fixture: str = "fixture_model.c") -> list[Path]:
    return (sorted((FW / "src" / "device").glob("*.c"))
            + kernel_sources(kernel_selection("host"))
            + sorted((FW / "src" / "runtime").glob("*.c"))
            + sorted((REPO / "boards" / "host").glob("*.c"))
            + [HERE / fixture])


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    if shutil.which(CC) is None:
        pytest.skip("no C compiler")
    return tmp_path_factory.mktemp("protocol-build")


@pytest.fixture(scope="session")
def device_exe(build_dir) -> Path:
    if not list((FW / "src" / "runtime").glob("*.c")):
        pytest.skip("runtime not built yet")
    return _build("device", device_sources(), build_dir,
                  [model_config(build_dir, "fixture_model.c")])


@pytest.fixture(scope="session")
def big_device_exe(build_dir) -> Path:
    if not list((FW / "src" / "runtime").glob("*.c")):
        pytest.skip("runtime not built yet")
    return _build("device-big", device_sources("fixture_big_model.c"), build_dir,
                  [model_config(build_dir, "fixture_big_model.c")])


@pytest.fixture(scope="session")
def harness_exe(build_dir) -> Path:
    dev = FW / "src" / "device"
    return _build("harness", [HERE / "harness.c", dev / "mdy_frame.c", dev / "mdy_order.c"], build_dir)


@pytest.fixture(scope="session")
def dataset(build_dir) -> Path:
    return write_dataset_image(build_dir / "data.bin", *learnable_data(), classes=3)


class DeviceProcess:
    """A device process and pyserial-like ports onto its stdin/stdout."""

    def __init__(self, exe: Path, dataset: Path | None):
        env = dict(os.environ, **SAN_ENV)
        env.pop("MEDYATE_DATASET", None)
        if dataset is not None:
            env["MEDYATE_DATASET"] = str(dataset)
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)

    def port(self, timeout=0.05) -> PipeSerial:
        return PipeSerial(self.proc.stdout, self.proc.stdin, timeout)

    def device(self, **link_kw) -> Device:
        kw = dict(timeout=2.0)
        kw.update(link_kw)
        return Device(Link(self.port(), **kw))

    def finish(self) -> tuple[int | None, str]:
        """Stop the process (if still running); its exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.stdin.close()
        except Exception:
            pass
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, err


@pytest.fixture
def device_process(device_exe, dataset):
    """Factory: start device processes; each is checked for sanitizer reports
    and stopped at the end of the test. exe: another build (big_device_exe)."""
    procs: list[DeviceProcess] = []

    def start(with_dataset: Path | None | bool = True, exe: Path | None = None) -> DeviceProcess:
        ds = dataset if with_dataset is True else (None if with_dataset is False else with_dataset)
        p = DeviceProcess(exe or device_exe, ds)
        procs.append(p)
        return p
    yield start
    for p in procs:
        _, err = p.finish()
        assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err


@pytest.fixture
def dev(device_process) -> Device:
    return device_process().device()
