"""A bounded libFuzzer pass over the device's frame parser and dispatcher:
the device code built for the host board (the same sources tests/protocol
builds) with clang's libFuzzer under ASan/UBSan, seeded with valid request
frames from the host's protocol code. Fails on any crash, leak or undefined
behaviour and reports the executions. MEDYATE_FUZZ_SECONDS sets the length
(scripts/fuzz_device.sh runs a long pass)."""
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from medyate.protocol import spec
from medyate.protocol.dataset_image import write_dataset_image
from medyate.protocol.framing import encode_frame

HERE = Path(__file__).resolve().parent
PROTO = HERE.parent / "protocol"
sys.path.insert(0, str(PROTO))
_spec = importlib.util.spec_from_file_location("protocol_build", PROTO / "conftest.py")
protocol_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(protocol_build)
from protocol_helpers import learnable_data, model_config  # noqa: E402

SECONDS = int(os.environ.get("MEDYATE_FUZZ_SECONDS", "20"))


def _seeds(corpus: Path) -> None:
    """One valid frame per request (zeroed fixed fields) as wire bytes and as
    a framed-mode record (see fuzz_device.c), plus a session-like run of
    several requests in a row in both forms."""
    stream, records = b"\0", b"\1"
    for i, name in enumerate(sorted(spec.ANSWER)):
        payload = bytes(spec.LAYOUT[name].size)
        frame = encode_frame(spec.MSG[name], i + 1, payload)
        record = struct.pack("<BBH", spec.MSG[name], i + 1, len(payload)) + payload
        (corpus / f"{name}.bin").write_bytes(b"\0" + frame)
        (corpus / f"{name}.rec").write_bytes(b"\1" + record)
        if name != "SHUTDOWN":
            stream += frame
            records += record
    (corpus / "stream.bin").write_bytes(stream)
    (corpus / "stream.rec").write_bytes(records)


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("no clang (scripts/setup.sh installs it)")
    d = tmp_path_factory.mktemp("fuzz-device")
    sources = [s for s in protocol_build.device_sources() if s.name != "main.c"]
    fw = protocol_build.FW
    exe = d / "fuzz_device"
    r = subprocess.run(
        [clang, "-std=c99", "-O1", "-g", "-fsanitize=fuzzer,address,undefined",
         "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
         f"-I{fw / 'include'}", f"-I{fw / 'src' / 'device'}",
         f"-I{model_config(d, 'fixture_model.c')}",
         str(HERE / "fuzz_device.c"), *map(str, sources), "-lm",
         "-Wl,--wrap=board_exit,--wrap=board_uart_write", "-o", str(exe)],
        capture_output=True, text=True)
    if r.returncode:
        pytest.fail(f"building the fuzz target failed:\n{r.stderr[-4000:]}")
    return exe, write_dataset_image(d / "data.bin", *learnable_data(), classes=3)


def test_device_dispatcher_survives_fuzzing(fuzzer, tmp_path):
    exe, data = fuzzer
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _seeds(corpus)
    env = dict(os.environ, MEDYATE_DATASET=str(data),
               ASAN_OPTIONS="halt_on_error=1:detect_leaks=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    r = subprocess.run([str(exe), f"-max_total_time={SECONDS}", "-max_len=4200",
                        "-print_final_stats=1", f"-artifact_prefix={tmp_path}/", str(corpus)],
                       capture_output=True, text=True, env=env, timeout=SECONDS + 120)
    log = r.stderr
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    print(f"device fuzz: {runs.group(1) if runs else '?'} executions in {SECONDS} s")
    assert r.returncode == 0, f"the device crashed under fuzzing:\n{log[-6000:]}"
    assert runs and int(runs.group(1)) > 1000
