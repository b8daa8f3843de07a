"""The boards medyate builds for, and the CMake build of a firmware image.

A board is a folder `boards/<name>/` holding `board.json` (name, CPU flags,
memory sizes, flash methods, serial defaults), the toolchain file, startup,
linker script and drivers. Adding a folder adds a board; nothing here lists
them by name.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MedyateError

REPO = Path(__file__).resolve().parents[2]
BOARDS_DIR = REPO / "boards"


# board.json "cycle_counter" -> what it counts
COUNTER_UNITS = {"systick-icount": "instructions", "dwt-cyccnt": "cycles",
                 "clock_gettime-ns": "nanoseconds"}


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    arch: str                      # "arm" or "native"
    cpu: str
    cpu_flags: tuple
    flash: int | None              # bytes of flash the image may use
    ram: int | None                # bytes of RAM (static data + stack)
    stack_default: int
    flash_methods: tuple
    serial_baud: int
    serial_port_hint: str
    exit: str
    cycle_counter: str
    cycles_hz: int
    path: Path
    # Optimized kernel folders (firmware/src/kernels/<folder>) over the
    # reference kernels, highest priority first: firmware/engine_build.py.
    kernels: tuple = ()
    spec: dict = field(repr=False, compare=False, default_factory=dict)
    # Where the image and a dataset image go, and how QEMU runs an emulated
    # board (board.json "flash_address", "dataset.address", "qemu").
    flash_address: int | None = None
    dataset_address: int | None = None
    dataset_size: int | None = None      # bytes of the region a dataset image is loaded into
    qemu_machine: str = ""
    qemu_icount: str = ""
    # Flashing a real board: where its serial port appears, what names its
    # probe shows, and the probe tools' settings.
    serial_port_globs: tuple = ()
    probe_names: tuple = ()
    mass_storage_label: str = ""
    openocd_config: str = ""
    pyocd_target: str = ""
    pyocd_pack: str = ""
    connect_hint: str = ""

    @property
    def is_native(self) -> bool:
        return self.arch == "native"

    @property
    def counter_unit(self) -> str:
        """What the board's cycle counter counts, by the name metrics.jsonl and
        the console both give it: QEMU's counts instructions, the DWT cycles,
        the host build nanoseconds."""
        return COUNTER_UNITS.get(self.cycle_counter, "cycles")

    @property
    def is_emulated(self) -> bool:
        """True if medyate starts this board itself (in QEMU)."""
        return bool(self.qemu_machine)

    def fact(self, name: str):
        """A board fact that must be there for what is asked (a probe's
        setting, an address): its value, or a MedyateError naming the field."""
        value = getattr(self, name)
        if value in (None, "", ()):
            raise MedyateError(f"{self.path / 'board.json'} has no {name!r}: it is needed here")
        return value

    @property
    def tool_prefix(self) -> str:
        """Prefix of the binutils for this board's images ("" for native)."""
        return "" if self.is_native else "arm-none-eabi-"


# board.json is read once per file version: every part of medyate that needs a
# board fact (memory sizes, stack, addresses, tools) asks get_board.
_CACHE: dict = {}


def _load(path: Path) -> Board:
    f = path / "board.json"
    try:
        st = f.stat()
    except OSError as exc:
        raise MedyateError(f"{f}: {exc}") from None
    key = (str(f.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        _CACHE[key] = _read(path)
    return _CACHE[key]


def _read(path: Path) -> Board:
    try:
        spec = json.loads((path / "board.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MedyateError(f"{path / 'board.json'}: {exc}") from None
    try:
        mem = spec.get("memory", {})
        serial = spec.get("serial", {})
        qemu = spec.get("qemu", {})
        return Board(
            name=spec["name"], description=spec.get("description", ""),
            arch=spec.get("arch", "arm"), cpu=spec.get("cpu", ""),
            cpu_flags=tuple(spec.get("cpu_flags", [])),
            flash=mem.get("flash"), ram=mem.get("ram"),
            stack_default=int(spec.get("stack_default", 0)),
            flash_methods=tuple(spec.get("flash_methods", [])),
            serial_baud=int(serial.get("baud", 0)),
            serial_port_hint=serial.get("port_hint", ""),
            exit=spec.get("exit", ""), cycle_counter=spec.get("cycle_counter", ""),
            cycles_hz=int(spec.get("cycles_hz", 0)), path=path, spec=spec,
            kernels=_string_list(spec, "kernels"),
            flash_address=_address(spec.get("flash_address")),
            dataset_address=_address(spec.get("dataset", {}).get("address")),
            dataset_size=spec.get("dataset", {}).get("size"),
            qemu_machine=qemu.get("machine", ""), qemu_icount=qemu.get("icount", ""),
            serial_port_globs=tuple(serial.get("port_globs", [])),
            probe_names=tuple(spec.get("probe_names", [])),
            mass_storage_label=spec.get("mass_storage_label", ""),
            openocd_config=spec.get("openocd_config", ""),
            pyocd_target=spec.get("pyocd_target", ""), pyocd_pack=spec.get("pyocd_pack", ""),
            connect_hint=spec.get("connect_hint", ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise MedyateError(f"{path / 'board.json'}: missing or bad field {exc}") from None


def _address(v) -> int | None:
    """"0x08000000" (board.json writes addresses as hex strings) or a number."""
    if v is None:
        return None
    return int(v, 0) if isinstance(v, str) else int(v)


def _string_list(spec: dict, key: str) -> tuple:
    v = spec.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise TypeError(f"'{key}' must be a list of strings, not {v!r}")
    return tuple(v)


def list_boards(boards_dir: Path = BOARDS_DIR) -> list[Board]:
    """Every board with a board.json, sorted by name."""
    out = [_load(p.parent) for p in sorted(Path(boards_dir).glob("*/board.json"))]
    return sorted(out, key=lambda b: b.name)


def get_board(name, boards_dir: Path = BOARDS_DIR) -> Board:
    """The board called `name` (a Board passes through)."""
    if isinstance(name, Board):
        return name
    path = Path(boards_dir) / str(name)
    if (path / "board.json").is_file():
        return _load(path)
    known = ", ".join(b.name for b in list_boards(boards_dir)) or "none"
    raise MedyateError(f"unknown board '{name}'; known boards: {known}")


def emulated_board(boards_dir: Path = BOARDS_DIR) -> Board:
    """The board QEMU runs (the one whose board.json has a "qemu" section)."""
    found = [b for b in list_boards(boards_dir) if b.is_emulated]
    if len(found) != 1:
        raise MedyateError(f"expected one board with a \"qemu\" section in board.json, found "
                           f"{len(found)}: name the board")
    return found[0]


# ------------------------------------------------------------------ build
@dataclass
class BuildResult:
    board: Board
    build_dir: Path
    elf: Path | None          # Arm: firmware.elf; host: the native device program
    bin: Path | None          # Arm: raw image for flashing
    map: Path | None
    lib: Path | None          # host: libmedyate_model.so
    sections: dict = field(default_factory=dict)   # section name -> bytes
    log: str = ""
    stack: object = None      # Arm: stack_bound.StackBound of the image


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _cmake_value(v) -> str:
    if isinstance(v, bool):
        return "ON" if v else "OFF"
    if isinstance(v, (list, tuple)):
        return ";".join(str(x) for x in v)
    return str(v)


def build_firmware(board, model_dir, out_dir, app_sources=None, extra_defs=None) -> BuildResult:
    """Configure and build with the top-level CMakeLists.txt into `out_dir`.

    board:       name or Board
    model_dir:   directory of generated model sources (or None)
    app_sources: sources replacing firmware/src/device (MEDYATE_APP_SOURCES)
    extra_defs:  more CMake cache variables, e.g. {"MEDYATE_WITH_ENGINE": False,
                 "MEDYATE_STACK_SIZE": 8192, "MEDYATE_DEFINES": ["X=1"],
                 "MEDYATE_KERNELS": []  (reference kernels only)}

    A compile error raises MedyateError with the tail of the compiler output;
    an image too large for the chip raises one naming the region, the bytes
    over, and the largest parts.
    """
    board = get_board(board)
    cmake = shutil.which("cmake")
    if cmake is None:
        raise MedyateError("cmake not found: install the Debian package cmake")
    if not board.is_native and shutil.which("arm-none-eabi-gcc") is None:
        raise MedyateError("arm-none-eabi-gcc not found: install the Debian packages "
                           "gcc-arm-none-eabi and libnewlib-arm-none-eabi")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)

    # A build dir configured for another board (another toolchain) cannot be reused.
    cache = out / "CMakeCache.txt"
    if cache.is_file():
        m = re.search(r"^MEDYATE_BOARD:\w+=(.*)$", cache.read_text(errors="replace"), re.M)
        if m and m.group(1).strip() != board.name:
            cache.unlink()
            shutil.rmtree(out / "CMakeFiles", ignore_errors=True)

    defs = {"MEDYATE_BOARD": board.name,
            "MEDYATE_MODEL_DIR": str(Path(model_dir).resolve()) if model_dir else "",
            "MEDYATE_APP_SOURCES": [str(Path(s).resolve()) for s in (app_sources or [])],
            "MEDYATE_KERNELS": list(board.kernels),
            # the interpreter running this package runs firmware/engine_build.py
            "Python3_EXECUTABLE": sys.executable,
            "CMAKE_BUILD_TYPE": "Release"}
    defs.update(extra_defs or {})
    cmd = [cmake, "-S", str(REPO), "-B", str(out)]
    if shutil.which("ninja") and not (cache.is_file() and "CMAKE_GENERATOR:INTERNAL=Unix Makefiles"
                                       in cache.read_text(errors="replace")):
        cmd += ["-G", "Ninja"]
    cmd += [f"-D{k}={_cmake_value(v)}" for k, v in defs.items()]
    log = ""
    r = subprocess.run(cmd, capture_output=True, text=True)
    log += r.stdout + r.stderr
    if r.returncode != 0:
        raise MedyateError(f"CMake configuration for {board.name} failed:\n{_tail(r.stderr or r.stdout)}")

    map_path = out / "firmware.map"
    if map_path.exists():
        map_path.unlink()   # a failed link must not leave the previous map behind
    r = subprocess.run([cmake, "--build", str(out), "-j", str(os.cpu_count() or 2)],
                       capture_output=True, text=True)
    log += r.stdout + r.stderr
    if r.returncode != 0:
        text = r.stdout + r.stderr
        overflows = parse_overflows(text)
        if overflows:
            raise MedyateError(overflow_message(board, overflows, map_path, out))
        raise MedyateError(f"build for {board.name} failed:\n{_tail(text)}")

    if board.is_native:
        exe = out / "firmware"
        lib = out / "libmedyate_model.so"
        return BuildResult(board, out, exe if exe.exists() else None, None, None,
                           lib if lib.exists() else None, {}, log)
    elf = out / "firmware.elf"
    sections = section_sizes(elf, board.tool_prefix)
    # The stack reserve is a linker symbol, so the linker cannot see a reserve
    # too small for the code: the static bound of the image's call chains is
    # checked here, and an image whose stack may overrun it is refused as one
    # that overflows a region would be.
    from .stack_bound import stack_bound
    bound = stack_bound(elf, su_dir=out, prefix=board.tool_prefix)
    reserve = sections.get(".stack", 0)
    if bound.bytes > reserve:
        for p in (elf, out / "firmware.bin"):
            p.unlink(missing_ok=True)
        raise MedyateError(
            f"the image for {board.name} may need {bound.bytes} bytes of stack but reserves "
            f"{reserve} (MEDYATE_STACK_SIZE): {bound.describe()}. Build with "
            f"MEDYATE_STACK_SIZE={-(-bound.bytes // 8) * 8} or more")
    return BuildResult(board, out, elf, out / "firmware.bin", map_path, None,
                       sections, log, bound)


def section_sizes(elf, prefix: str = "arm-none-eabi-") -> dict:
    """Allocated sections of an ELF: {name: bytes} (debug sections left out)."""
    r = subprocess.run([f"{prefix}size", "-A", str(elf)], capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            name = parts[0]
            if name.startswith((".debug", ".comment", ".ARM.attributes")):
                continue
            out[name] = int(parts[1])
    return out


# ------------------------------------------------------- overflow report
_OVERFLOW = re.compile(r"region `([^']+)' overflowed by (\d+) bytes")


def parse_overflows(text: str) -> dict:
    """{region: bytes over} from ld's messages."""
    return {m.group(1): int(m.group(2)) for m in _OVERFLOW.finditer(text)}


def parse_map_regions(map_text: str) -> dict:
    """{region: (origin, length)} from a map file's Memory Configuration."""
    out = {}
    sect = map_text.split("Memory Configuration", 1)
    if len(sect) < 2:
        return out
    for line in sect[1].split("Linker script and memory map", 1)[0].splitlines():
        m = re.match(r"^(\w+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)", line)
        if m and m.group(1) != "Name" and m.group(1) != "*default*":
            out[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
    return out


def parse_map_input_sections(map_text: str) -> list[dict]:
    """Input sections placed by the linker: name, address, size, object file."""
    body = map_text.split("Linker script and memory map", 1)
    if len(body) < 2:
        return []
    lines = body[1].splitlines()
    out = []
    one = re.compile(r"^ (\.\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
    head = re.compile(r"^ (\.\S+)\s*$")
    cont = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = one.match(line)
        if m:
            out.append({"section": m.group(1), "addr": int(m.group(2), 16),
                        "size": int(m.group(3), 16), "file": m.group(4).strip()})
        else:
            m = head.match(line)
            if m and i + 1 < len(lines):
                c = cont.match(lines[i + 1])
                if c:
                    out.append({"section": m.group(1), "addr": int(c.group(1), 16),
                                "size": int(c.group(2), 16), "file": c.group(3).strip()})
                    i += 1
        i += 1
    return [s for s in out if s["size"] > 0]


def _part_name(section: str) -> str:
    for p in (".text.", ".rodata.", ".data.", ".bss.", ".mdy_dataset."):
        if section.startswith(p) and len(section) > len(p):
            return section[len(p):]
    return section


def largest_parts(map_path: Path, region: str, top: int = 5) -> list[dict]:
    """The biggest input sections (one per symbol with -f*-sections) that the
    linker put in `region`, from the map file of a (possibly failed) link."""
    try:
        text = Path(map_path).read_text(errors="replace")
    except OSError:
        return []
    regions = parse_map_regions(text)
    if region not in regions:
        return []
    origin, length = regions[region]
    # Sections that run over the end still start at or after the origin.
    parts = [s for s in parse_map_input_sections(text)
             if origin <= s["addr"] < origin + max(length, 1) * 2
             and not s["section"].startswith((".stack",))]
    parts.sort(key=lambda s: -s["size"])
    return [{"name": _part_name(s["section"]), "section": s["section"], "size": s["size"],
             "file": Path(s["file"]).name} for s in parts[:top]]


def _largest_from_objects(build_dir: Path, top: int = 5) -> list[dict]:
    """Fallback without a map: biggest symbols of the compiled objects."""
    objs = [str(p) for p in Path(build_dir).rglob("*.obj")] + \
           [str(p) for p in Path(build_dir).rglob("*.o")]
    if not objs:
        return []
    r = subprocess.run(["arm-none-eabi-nm", "-S", "--size-sort", *objs],
                       capture_output=True, text=True)
    syms = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            syms.append({"name": parts[3], "section": parts[2], "size": int(parts[1], 16),
                         "file": ""})
    syms.sort(key=lambda s: -s["size"])
    return syms[:top]


def overflow_message(board: Board, overflows: dict, map_path: Path, build_dir: Path) -> str:
    lines = [f"the image does not fit the {board.name} board:"]
    for region, over in overflows.items():
        cap = board.flash if region.upper().startswith("FLASH") else board.ram
        capacity = f" of {cap} ({cap // 1024} KB)" if cap else ""
        lines.append(f"  {region} overflowed by {over} bytes{capacity}")
        parts = largest_parts(map_path, region) or _largest_from_objects(build_dir)
        if parts:
            lines.append(f"  largest parts in {region}:")
            for p in parts:
                where = f" ({p['file']})" if p.get("file") else ""
                lines.append(f"    {p['size']:>10} bytes  {p['name']}{where}")
    if any(r.upper().startswith("RAM") for r in overflows):
        stack = ""
        try:
            m = re.search(r"^\.stack\s+0x[0-9a-fA-F]+\s+0x([0-9a-fA-F]+)",
                          Path(map_path).read_text(errors="replace"), re.M)
            if m:
                stack = f"{int(m.group(1), 16)} bytes of "
        except OSError:
            pass
        lines.append(f"  (RAM holds the {stack}stack reserve, .data and .bss; a smaller "
                     "channel budget or MEDYATE_STACK_SIZE shrinks it)")
    return "\n".join(lines)
