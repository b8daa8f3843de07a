"""`medyate-flash`: put a firmware image on a connected board and check it.

    medyate-flash --board nucleo-f746 --elf build/firmware.elf
    medyate-flash --board nucleo-f746 --plan plan.json --probe openocd
    medyate-flash --board nucleo-f746 --plan plan.json --data fmnist-5to9 --n-train 200
    medyate-flash --board nucleo-f746 --elf fw.elf --probe st-flash --dry-run

Probes, tried in this order by --probe auto (the first one that is installed
and sees a board wins):
  st-flash      Debian stlink-tools: write the .bin, read it back, compare, reset
  pyocd         PyPI pyocd: flash the ELF, read back with savemem, compare, reset
  openocd       Debian openocd: `program ELF verify reset exit`
  mass-storage  copy the .bin to the ST-LINK's USB drive; no FAIL.TXT after
With --data the task's samples are built into flash next to the model when
firmware and dataset fit the board's flash (the linker checks the limit), else
`medyate train --port` streams them over serial; the choice is printed.
Exit status: 0 flashed and verified, 1 error (no tool, no board, tool failed),
3 the read-back differs from the image, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import glob
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import MedyateError
from .common import option

PROBES = ("st-flash", "pyocd", "openocd", "mass-storage")
# Where a mass-storage drive may be mounted. Everything about the board (its
# flash address, probe settings, where its serial port appears) is in its
# board.json, read through medyate.boards.
MOUNT_ROOTS = ["/media", "/run/media", "/mnt", "/Volumes"]
EXIT_VERIFY = 3
# Seconds to wait for the ST-LINK drive to come back after a copy.
MASS_STORAGE_SETTLE = 15.0


class VerifyError(MedyateError):
    """The image read back from the board differs from the one written."""


# ---------------------------------------------------------------- helpers
TOOL_HINT = {"st-flash": "sudo apt-get install stlink-tools", "pyocd": "pip install pyocd",
             "openocd": "sudo apt-get install openocd"}


def install_hint(probe: str, board) -> str:
    """How to get `probe` working for `board`."""
    if probe == "mass-storage":
        return (f"connect the board by USB; its {board.mass_storage_label or 'USB'} drive "
                "must be mounted")
    if probe == "pyocd" and board.pyocd_pack:
        return f"{TOOL_HINT[probe]} (then: pyocd pack install {board.pyocd_pack})"
    return TOOL_HINT[probe]


def _show(cmd) -> str:
    return "$ " + (shlex.join(cmd) if isinstance(cmd, (list, tuple)) else cmd)


def _run(cmd, what: str, timeout: float = 120) -> str:
    print(_show(cmd), flush=True)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise MedyateError(f"{cmd[0]} not found ({TOOL_HINT.get(cmd[0], 'not on PATH')})") from None
    except subprocess.TimeoutExpired:
        raise MedyateError(f"{what}: {cmd[0]} did not finish within {timeout:.0f} s") from None
    out = (r.stdout or "") + (r.stderr or "")
    if r.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise MedyateError(f"{what} failed: {cmd[0]} exited with status {r.returncode}\n{tail}")
    return out


def find_serial_port(board) -> str | None:
    """The board's serial port (its probe's virtual COM port), if one is there."""
    for pattern in board.serial_port_globs:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def find_mass_storage(label: str) -> Path | None:
    """The mount point of the board's USB drive (volume label `label`)."""
    for root in MOUNT_ROOTS:
        for cand in [Path(root) / label, *Path(root).glob(f"*/{label}")]:
            if cand.is_dir():
                return cand
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 1 and parts[1].rstrip("/").endswith("/" + label):
                return Path(parts[1].replace("\\040", " "))
    except OSError:
        pass
    return None


def _compare(image: Path, readback: Path, base: int) -> None:
    want = image.read_bytes()
    try:
        got = readback.read_bytes()
    except OSError:
        raise VerifyError(f"verification failed: nothing was read back into {readback}") from None
    if got[:len(want)] != want:
        if len(got) < len(want):
            raise VerifyError(f"verification failed: read back {len(got)} of {len(want)} bytes")
        first = next(i for i in range(len(want)) if got[i] != want[i])
        raise VerifyError(f"verification failed: the flash differs from {image.name} "
                          f"from byte {first} (0x{base + first:08x}) on")


# ---------------------------------------------------------------- probes
class Probe:
    name = ""
    tool = ""

    def __init__(self, board, elf: Path, binary: Path, workdir: Path):
        self.board, self.elf, self.bin, self.workdir = board, elf, binary, workdir
        self.base = board.fact("flash_address")
        self.addr = f"0x{self.base:08x}"
        self.readback = workdir / "readback.bin"

    def installed(self) -> bool:
        return shutil.which(self.tool) is not None

    def detect_cmd(self):
        return None

    def detect(self) -> bool:
        """True if a board is connected (also True when the tool cannot tell)."""
        return True

    def commands(self) -> list:
        raise NotImplementedError

    def flash(self) -> None:
        raise NotImplementedError


class StFlash(Probe):
    name, tool = "st-flash", "st-flash"

    def installed(self):
        return shutil.which("st-flash") is not None and shutil.which("st-info") is not None

    def detect_cmd(self):
        return ["st-info", "--probe"]

    def detect(self):
        try:
            r = subprocess.run(self.detect_cmd(), capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
        out = r.stdout + r.stderr
        return r.returncode == 0 and "Found 0 stlink" not in out and "serial" in out.lower()

    def commands(self):
        size = str(self.bin.stat().st_size) if self.bin.exists() else "<size of image>"
        return [["st-flash", "write", str(self.bin), self.addr],
                ["st-flash", "read", str(self.readback), self.addr, size],
                ["st-flash", "reset"]]

    def flash(self):
        write, read, reset = self.commands()
        # st-flash also verifies by itself after writing; reading the image
        # back checks the same independently of the tool's version.
        _run(write, "writing the flash")
        _run(read, "reading the flash back")
        _compare(self.bin, self.readback, self.base)
        _run(reset, "resetting the board")


class PyOCD(Probe):
    name, tool = "pyocd", "pyocd"

    def target(self):
        return self.board.fact("pyocd_target")

    def detect_cmd(self):
        return ["pyocd", "list"]

    def detect(self):
        try:
            r = subprocess.run(self.detect_cmd(), capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
        out = r.stdout + r.stderr
        return r.returncode == 0 and "No available debug probes" not in out and \
            any(k in out for k in self.board.probe_names)

    def commands(self):
        size = str(self.bin.stat().st_size) if self.bin.exists() else "<size of image>"
        t = self.target()
        return [["pyocd", "flash", "-t", t, "--format", "elf", str(self.elf)],
                ["pyocd", "cmd", "-t", t, "-c", f"savemem {self.addr} {size} {self.readback}"],
                ["pyocd", "reset", "-t", t]]

    def flash(self):
        write, read, reset = self.commands()
        _run(write, "flashing with pyocd")
        _run(read, "reading the flash back")
        _compare(self.bin, self.readback, self.base)
        _run(reset, "resetting the board")


class OpenOCD(Probe):
    name, tool = "openocd", "openocd"

    def commands(self):
        cfg = self.board.fact("openocd_config")
        return [["openocd", "-f", cfg, "-c", f"program {self.elf} verify reset exit"]]

    def flash(self):
        cmd = self.commands()[0]
        print(_show(cmd), flush=True)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            raise MedyateError("openocd did not finish within 180 s") from None
        out = r.stdout + r.stderr
        if "Verify Failed" in out or "verify failed" in out.lower():
            raise VerifyError("verification failed: openocd reports the flash differs from "
                              f"{self.elf.name}\n" + "\n".join(out.strip().splitlines()[-10:]))
        if r.returncode != 0:
            tail = "\n".join(out.strip().splitlines()[-15:])
            hint = ""
            if "open failed" in out or "No device found" in out or "unable to" in out.lower():
                hint = f"\nno board found: {self.board.connect_hint or 'connect the board'}"
            raise MedyateError(f"openocd exited with status {r.returncode}{hint}\n{tail}")
        if "Verified OK" not in out:
            raise VerifyError("verification failed: openocd did not report 'Verified OK'")


class MassStorage(Probe):
    name, tool = "mass-storage", ""

    def label(self):
        return self.board.fact("mass_storage_label")

    def installed(self):
        return True

    def detect(self):
        return find_mass_storage(self.label()) is not None

    def _drive(self):
        return find_mass_storage(self.label())

    def commands(self):
        drive = self._drive() or Path("/media/$USER") / self.label()
        return [["cp", str(self.bin), str(drive / self.bin.name)], ["sync"]]

    def flash(self, settle: float | None = None):
        settle = MASS_STORAGE_SETTLE if settle is None else settle
        drive = self._drive()
        if drive is None:
            raise MedyateError(f"no {self.label()} drive mounted: connect the board and mount it")
        dest = drive / self.bin.name
        print(_show(["cp", str(self.bin), str(dest)]), flush=True)
        with open(self.bin, "rb") as src, open(dest, "wb") as out:
            out.write(src.read())
            out.flush()
            os.fsync(out.fileno())
        # The ST-LINK programs the chip, then re-enumerates the drive; on
        # failure it shows a FAIL.TXT. Wait for the drive to come back.
        deadline = time.monotonic() + settle
        time.sleep(min(1.0, settle / 4))
        while time.monotonic() < deadline:
            d = self._drive()
            if d is not None and (d / "FAIL.TXT").exists():
                reason = (d / "FAIL.TXT").read_text(errors="replace").strip()
                raise VerifyError(f"verification failed: the board reports FAIL.TXT: {reason}")
            if d is not None and any(d.iterdir()) and not dest.exists():
                return          # re-enumerated without the file and without FAIL.TXT
            if d is not None and dest.exists():
                # Still (or again) visible: it must be the same bytes.
                if dest.read_bytes() != self.bin.read_bytes():
                    raise VerifyError(f"verification failed: {dest} differs from {self.bin}")
                return
            time.sleep(0.2)


PROBE_CLASSES = {"st-flash": StFlash, "pyocd": PyOCD, "openocd": OpenOCD,
                 "mass-storage": MassStorage}


# ---------------------------------------------------------------- image
def _image_from_plan(plan: Path, board, out_dir: Path, data=None):
    """Build the plan's firmware; with `data` (dict of --data, --n-train,
    --n-test, --data-seed) also place the task's samples. Returns (elf,
    Placement or None)."""
    from ..session.firmware import build_with_data
    kw = dict(data or {})
    _, res, placement = build_with_data(plan, board.name, out_dir, log=print, **kw)
    return Path(res.elf), placement


def _train_hint(board, port: str, data, placement, plan=None) -> str:
    """The `medyate train` command for the flashed board, with every argument
    it requires: what this command knows filled in, <placeholders> for the rest."""
    model, plan_arg = "<model.onnx>", "<plan.json>"
    if plan is not None:
        from ..planner.plan import load_plan
        model, plan_arg = shlex.quote(str(load_plan(plan).model)), shlex.quote(str(plan))
    cmd = f"medyate train {model} --plan {plan_arg}"
    if data:
        cmd += f" --data {shlex.quote(str(data['data']))}"
        for opt, key in (("--n-train", "n_train"), ("--n-test", "n_test"),
                         ("--data-seed", "data_seed")):
            if data.get(key) not in (None, 0):
                cmd += f" {opt} {data[key]}"
    else:
        cmd += " --data <task-or-data.npz>"
    cmd += f" --board {board.name} --port {shlex.quote(port) if port[:1] != '<' else port}"
    cmd += " --out <run-dir>"
    if data:
        where = ("the samples are in flash" if placement is not None and placement.embedded
                 else "the samples will be streamed over serial")
        cmd += f"   ({where}; give the same data options)"
    return cmd


def _binary_for(elf: Path, workdir: Path, dry_run: bool) -> Path:
    sibling = elf.with_suffix(".bin")
    if sibling.is_file() and sibling.stat().st_mtime >= elf.stat().st_mtime:
        return sibling
    out = workdir / (elf.stem + ".bin")
    cmd = ["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(out)]
    if dry_run:
        print(_show(cmd))
    else:
        _run(cmd, "making the raw image")
    return out


# ---------------------------------------------------------------- main
def flash_board(board_name: str, elf=None, plan=None, probe: str = "auto",
                dry_run: bool = False, out_dir=None, data=None) -> str | None:
    """Flash and verify; returns the serial port to use (or None if not found).
    data: {"data": task, "n_train", "n_test", "data_seed"} to place the
    task's samples (only with a plan: the firmware is built for them)."""
    from ..boards import get_board
    board = get_board(board_name)
    real = [m for m in board.flash_methods if m in PROBE_CLASSES]
    if not real:
        raise MedyateError(f"board {board.name} is not flashed (it runs as "
                           f"{'/'.join(board.flash_methods) or 'a process'}): use "
                           f"`medyate train --board {board.name}`")
    if probe != "auto" and probe not in real:
        raise MedyateError(f"probe {probe} does not apply to {board.name}; use one of "
                           f"{', '.join(real)}")
    if data and plan is None:
        raise MedyateError("--data needs --plan: the samples are built into the firmware "
                           "(or streamed) when it is built for the plan")
    if out_dir:
        from ..outputs import check_output_dir
        workdir = check_output_dir(out_dir, "--out directory")
        workdir.mkdir(parents=True, exist_ok=True)
        return _flash(board, real, workdir, elf, plan, probe, dry_run, data)
    # without --out, the build and the read-back image are temporary
    with tempfile.TemporaryDirectory(prefix="medyate-flash-") as tmp:
        port = _flash(board, real, Path(tmp), elf, plan, probe, dry_run, data)
        if dry_run:
            print("# (the paths under {} are a temporary directory, removed now: give "
                  "--out DIR to keep the image)".format(tmp))
        return port


def _flash(board, real, workdir: Path, elf, plan, probe, dry_run, data):
    placement = None
    if plan is not None:
        elf, placement = _image_from_plan(Path(plan), board, workdir, data)
    if elf is None:
        raise MedyateError("nothing to flash: pass --elf FILE or --plan plan.json")
    elf = Path(elf)
    if not elf.is_file():
        raise MedyateError(f"no firmware image at {elf}")
    binary = _binary_for(elf, workdir, dry_run)

    order = [p for p in PROBES if p in real] if probe == "auto" else [probe]
    probes = [PROBE_CLASSES[p](board, elf, binary, workdir) for p in order]

    if dry_run:
        for p in probes:
            note = "" if p.installed() else f"   # not installed: {install_hint(p.name, board)}"
            print(f"# probe {p.name}{note}")
            if p.detect_cmd():
                print(_show(p.detect_cmd()))
            for c in p.commands():
                print(_show(c))
        print(f"# then: {_train_hint(board, '<serial-port>', data, placement, plan)}")
        return None

    installed = [p for p in probes if p.installed()]
    if not installed:
        hints = "; ".join(f"{p.name}: {install_hint(p.name, board)}" for p in probes)
        raise MedyateError(f"no flashing tool found on PATH. Install one: {hints}")
    chosen = None
    for p in installed:
        if p.detect():
            chosen = p
            break
    if chosen is None:
        tried = ", ".join(p.name for p in installed)
        missing = [p for p in probes if not p.installed()]
        more = ""
        if missing:
            more = ". Not installed: " + "; ".join(f"{p.name} ({install_hint(p.name, board)})"
                                                  for p in missing)
        raise MedyateError(f"no {board.name} board found (looked with {tried}): "
                           f"{board.connect_hint or 'connect the board'}" + more)
    print(f"flashing {elf.name} to {board.name} with {chosen.name}", flush=True)
    chosen.flash()
    print("flashed and verified", flush=True)
    port = find_serial_port(board)
    if port:
        print(f"serial port: {port}\nnext: {_train_hint(board, port, data, placement, plan)}")
    else:
        print(f"serial port: not found (look for {' or '.join(board.serial_port_globs)}; "
              "on Linux your user needs the dialout group)")
    return port


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medyate-flash", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--board", default="nucleo-f746", help="board name (default nucleo-f746)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--plan", help="training plan: build the firmware for it first (this or "
                                    "--elf is required)")
    src.add_argument("--elf", help="a built firmware.elf (this or --plan is required)")
    p.add_argument("--probe", default="auto", choices=("auto", *PROBES),
                   help="flashing tool (default auto: the first installed one that sees a "
                        "board)")
    p.add_argument("--out", help="work directory (build output, read-back image) (default: a "
                                 "temporary directory, removed at the end)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the commands, run nothing (default: flash)")
    p.add_argument("--data", help="with --plan: a task (builtin name, .npz or folder) whose "
                                  "samples go into flash if they fit, else are streamed "
                                  "(default: none, streamed by the session)")
    p.add_argument("--n-train", type=option("n_train"), help="training samples of --data (default: the task's)")
    p.add_argument("--n-test", type=option("n_test"), help="test samples of --data (default: the task's)")
    p.add_argument("--data-seed", type=option("data_seed"), default=0, help="seed of the task's split (default 0)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    data = None
    if args.data is not None:
        data = {"data": args.data, "n_train": args.n_train, "n_test": args.n_test,
                "data_seed": args.data_seed}
    elif args.n_train is not None or args.n_test is not None:
        parser.error("--n-train/--n-test need --data")
    try:
        flash_board(args.board, elf=args.elf, plan=args.plan, probe=args.probe,
                    dry_run=args.dry_run, out_dir=args.out, data=data)
    except VerifyError as exc:
        print(f"medyate-flash: error: {exc}", file=sys.stderr)
        return EXIT_VERIFY
    except MedyateError as exc:
        print(f"medyate-flash: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("medyate-flash: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
