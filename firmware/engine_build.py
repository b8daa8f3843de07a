"""What the C engine is compiled from and how: the one definition that
CMakeLists.txt (through the command line below) and the host cffi build
(host/medyate/engine/build.py, by import) both use, so the host simulation and
a device image always compile the same kernel files with the same flags.

Kernel selection works as in TensorFlow Lite Micro:

  firmware/src/kernels/reference/<type>/<kernel>.c   portable reference kernels
  firmware/src/kernels/<folder>/<type>/<kernel>.c    optimized kernels

A target selects an ordered list of optimized folders (board.json "kernels").
For every reference kernel, the first selected folder that has a file of the
same <type>/<kernel>.c supplies it instead; the reference is the last resort.
An optimized file must replace a reference file: one with no reference twin
would exist on some targets only, and a build without that folder could not
link, so it is an error.

Standard library only: CMake runs this file with any Python 3.

    python3 engine_build.py flags                          ';'-separated compile flags
    python3 engine_build.py kernels [--root DIR] [FOLDER...]  ';'-separated kernel sources

(--root: a kernels tree other than firmware/src/kernels, for tests.)
"""
from __future__ import annotations

import sys
from pathlib import Path

KERNELS = Path(__file__).resolve().parent / "src" / "kernels"
REFERENCE = "reference"

# Compile flags of the engine on every target (CMake adds its own for images:
# sections, stack usage). -ffp-contract=off: no fused multiply-add unless a
# kernel asks for one (fmaf), so the same C gives the same fp32 arithmetic on
# the host, in QEMU and on the board (GNU C fuses a*b+c by default where the
# FPU has VFMA, as the M7's does). Strict C99: the engine is meant to build with
# any C99 compiler, so no target may rely on GNU extensions.
FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing",
         "-ffp-contract=off")


class KernelSelectionError(ValueError):
    pass


def kernel_folders(root: Path = KERNELS) -> list[str]:
    """The optimized folders that exist (every folder beside reference/)."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and p.name != REFERENCE)


def select_kernels(selection=(), root: Path = KERNELS) -> list[Path]:
    """The kernel sources of a build that selects the optimized folders
    `selection` (highest priority first), sorted by <type>/<kernel>.c."""
    root = Path(root)
    if not (root / REFERENCE).is_dir():
        raise KernelSelectionError(f"{root / REFERENCE}: no reference kernels")
    chosen = {p.relative_to(root / REFERENCE): p for p in (root / REFERENCE).rglob("*.c")}
    known = kernel_folders(root)
    for folder in selection:
        if folder == REFERENCE:
            raise KernelSelectionError(
                f"kernel folder '{REFERENCE}' is always used; list only optimized "
                f"folders (known: {', '.join(known) or 'none'})")
        if folder not in known:
            raise KernelSelectionError(
                f"unknown kernel folder '{folder}' (known: {', '.join(known) or 'none'})")
    seen = set()
    for folder in selection:
        for p in sorted((root / folder).rglob("*.c")):
            rel = p.relative_to(root / folder)
            if rel not in chosen:
                raise KernelSelectionError(
                    f"optimized kernel {p.relative_to(root)} has no reference kernel "
                    f"{REFERENCE}/{rel}: an optimized file must replace a reference "
                    "file of the same name")
            if rel not in seen:      # an earlier folder in the list wins
                chosen[rel] = p
                seen.add(rel)
    return [chosen[k] for k in sorted(chosen)]


def main(argv: list[str]) -> int:
    if argv[:1] == ["flags"]:
        print(";".join(FLAGS))
        return 0
    if argv[:1] == ["kernels"]:
        root, folders = KERNELS, argv[1:]
        if folders[:1] == ["--root"] and len(folders) > 1:
            root, folders = Path(folders[1]), folders[2:]
        try:
            print(";".join(str(p) for p in select_kernels(folders, root)))
        except KernelSelectionError as exc:
            print(f"kernel selection: {exc}", file=sys.stderr)
            return 1
        return 0
    print("usage: engine_build.py flags | kernels [--root DIR] [FOLDER...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
