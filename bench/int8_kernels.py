#!/usr/bin/env python
"""Instruction counts of the int8 reference kernels against the fp32 reference
kernels on the Cortex-M7 (QEMU mps2-an500 with -icount shift=0, where the
board's cycle counter counts executed instructions, resolution 40), on the
shapes of the published CMSIS-NN counts (pointwise, dense 3x3, depthwise 3x3,
fully connected, a 1x1 sparse weight gradient from fp32 and from int8 maps).

    .venv/bin/python bench/int8_kernels.py     # writes bench/results/int8_kernels.{md,json}

The firmware is bench/int8_kernels/kernels_app.c linked with the engine's
kernels, built with the board's own flags (-O2, Cortex-M7, FPv5-SP). Counts
are instructions, not cycles (no wait states, no dual issue).
"""
from __future__ import annotations

import argparse

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "host"))

from medyate.boards import build_firmware  # noqa: E402
from medyate.session.qemu import QemuMachine  # noqa: E402

APP = REPO / "bench" / "int8_kernels" / "kernels_app.c"
OUT = REPO / "bench" / "results"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        res = build_firmware("qemu-mps2-an500", None, tmp, app_sources=[APP])
        rows = []
        with QemuMachine(res.elf, timeout=60) as m:
            assert m.read_line() == b"HELLO int8-kernels\n"
            while True:
                line = m.read_line(timeout=120).decode().split()
                if line[0] == "DONE":
                    break
                name, macs, f, q = line[1], *map(int, line[2:])
                rows.append(dict(kernel=name, macs=macs, fp32_instr=f, s8_instr=q,
                                 fp32_per_mac=round(f / macs, 2), s8_per_mac=round(q / macs, 2)))
            assert m.wait(timeout=10) == 0
    OUT.mkdir(exist_ok=True)
    (OUT / "int8_kernels.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# int8 against fp32 reference kernels: instructions per MAC (QEMU Cortex-M7)",
             "", "`.venv/bin/python bench/int8_kernels.py`; -O2, -mcpu=cortex-m7, "
             "fpv5-sp-d16; instructions, not cycles.", "",
             "| kernel | MACs | fp32 instr/MAC | int8 instr/MAC | int8 / fp32 |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kernel']} | {r['macs']} | {r['fp32_per_mac']} | "
                     f"{r['s8_per_mac']} | {r['s8_instr'] / r['fp32_instr']:.2f} |")
    (OUT / "int8_kernels.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
