"""Exact instruction counts per firmware function, from QEMU's TCG plugin.

    prof = InsnProfile(elf)                       # builds the plugin once (cached)
    with QemuMachine(elf, extra_args=prof.qemu_args()) as m:
        ...                                       # run the firmware, let it exit
    counts = prof.read()                          # {"mdy_conv2d_nhwc_f32": 123456, ...}

The plugin (`boards/qemu-mps2-an500/qemu-plugin/insn_profile.c`) adds one per executed
instruction to the counter of the function that contains it and writes the
counts when QEMU exits, so a profile covers one QEMU run. Function extents come
from the ELF's symbol table (arm-none-eabi-nm). The board's SysTick counter
(resolution 40 instructions) stays the fallback where no host C compiler can
build the plugin.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import MedyateError

SOURCE = Path(__file__).resolve().parents[3] / "boards" / "qemu-mps2-an500" / "qemu-plugin" / "insn_profile.c"
NM = "arm-none-eabi-nm"
OTHER, TOTAL = "<other>", "<total>"


def available() -> bool:
    """Whether the plugin can be built and symbols read here."""
    return SOURCE.is_file() and shutil.which("cc") is not None and shutil.which(NM) is not None


def plugin_path() -> Path:
    """The built plugin, compiled from its source on first use (cached by content)."""
    from ..engine.build import cache_dir
    src = SOURCE.read_bytes()
    out = cache_dir() / f"insn_profile-{hashlib.sha256(src).hexdigest()[:16]}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.so")
        r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-fvisibility=hidden",
                            "-o", str(tmp), str(SOURCE)], capture_output=True, text=True)
        if r.returncode != 0:
            raise MedyateError(f"cannot build the QEMU instruction-count plugin:\n{r.stderr}")
        tmp.replace(out)
    return out


def function_extents(elf) -> list[tuple[int, int, str]]:
    """(start, end, name) of every function in `elf`, sorted, Thumb bit cleared.
    A symbol without a size (hand-written assembly) extends to the next one; a
    name may appear more than once (a function and its compiler clones)."""
    r = subprocess.run([NM, "-n", "-S", "--defined-only", str(elf)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise MedyateError(f"{NM} could not read {elf}: {r.stderr.strip()}")
    syms = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            start, size, name = int(parts[0], 16) & ~1, int(parts[1], 16), parts[3]
        elif len(parts) == 3 and parts[1] in "tTwW":
            start, size, name = int(parts[0], 16) & ~1, 0, parts[2]
        else:
            continue
        if name.startswith("$"):      # mapping symbols ($t, $d) are not functions
            continue
        # gcc's clones (f.constprop.0, f.isra.0, f.part.0) count as f
        name = name.split(".", 1)[0]
        syms.append([start, start + size, name])
    syms.sort()
    out: list[tuple[int, int, str]] = []
    for i, (start, end, name) in enumerate(syms):
        nxt = syms[i + 1][0] if i + 1 < len(syms) else start + 2
        if end <= start:
            end = nxt
        if out and start < out[-1][1]:          # an alias of the previous function
            continue
        if end > start:
            out.append((start, end, name))
    return out


def object_extents(map_file) -> list[tuple[int, int, str]]:
    """(start, end, object) of every code input section in a GNU ld map file,
    named by its object file's source stem (mdy_conv2d_nhwc_f32.c.obj ->
    mdy_conv2d_nhwc_f32). Counting by object attributes a kernel's static
    helpers (which may share names across files) to the kernel's own file."""
    out = []
    pending = None
    for line in Path(map_file).read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 1 and parts[0].startswith(".text"):
            pending = parts[0]                # the address line follows
            continue
        if parts and parts[0].startswith(".text") and len(parts) >= 4:
            parts = parts[1:]
        elif pending is None or len(parts) != 3:
            pending = None
            continue
        pending = None
        if len(parts) < 3 or not parts[0].startswith("0x"):
            continue
        start, size = int(parts[0], 16), int(parts[1], 16)
        if size == 0:
            continue
        name = Path(parts[2].split("(")[0]).name
        for suffix in (".obj", ".o"):
            name = name.removesuffix(suffix)
        name = name.removesuffix(".c").removesuffix(".S")
        out.append((start, start + size, name))
    out.sort()
    return [e for i, e in enumerate(out) if i == 0 or e[0] >= out[i - 1][1]]


class InsnProfile:
    """One plugin run's files: the symbol table handed in, the counts written out.
    Counts are per function (the ELF's symbols), or per object file when a
    linker map is given."""

    def __init__(self, elf, work=None, map_file=None):
        self.elf = Path(elf)
        self._tmp = None
        if work is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="medyate-insn-")
            work = self._tmp.name
        self.work = Path(work)
        self.syms = self.work / "syms.txt"
        self.out = self.work / "counts.txt"
        extents = object_extents(map_file) if map_file else function_extents(elf)
        self.syms.write_text("".join(f"{s:x} {e:x} {n}\n" for s, e, n in extents))
        self.plugin = plugin_path()

    def qemu_args(self) -> list[str]:
        self.out.unlink(missing_ok=True)
        return ["-plugin", f"{self.plugin},syms={self.syms},out={self.out}"]

    def read(self) -> dict[str, int]:
        """Instructions per function of the run that just ended, with OTHER
        (outside every function) and TOTAL."""
        if not self.out.is_file():
            raise MedyateError("QEMU wrote no instruction counts: did the firmware exit "
                               "(semihosting) rather than being killed?")
        counts = {}
        for line in self.out.read_text().splitlines():
            n, name = line.split(maxsplit=1)
            counts[name] = counts.get(name, 0) + int(n)
        return counts
