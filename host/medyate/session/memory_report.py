"""Where a firmware image's bytes go: flash (code, constant data, frozen
weights) and RAM (.data, .bss, the stack reserve), from the ELF, its map file
and the compiler's -fstack-usage files. As a dict (for JSON) and a table.

`firmware_memory` puts the planner's count of the plan's RAM
(planner.footprint.memory_plan) beside the linked image's: what
`medyate build --report` prints and writes to memory.json.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..boards import get_board, parse_map_regions, section_sizes
from ..stack_bound import stack_bound, stack_usage
from ..errors import MedyateError

# Constant data whose symbol starts with one of these counts as model weights.
# Symbols codegen gives the model's parameters (codegen/templates/model.c.j2).
WEIGHT_PREFIXES = ("mdy_weight_", "mdy_bias_")

FLASH_SECTIONS = (".isr_vector", ".text", ".rodata", ".mdy_dataset", ".ARM.extab",
                  ".ARM.exidx", ".preinit_array", ".init_array", ".fini_array")


def _nm(elf: Path, prefix: str) -> list[dict]:
    r = subprocess.run([f"{prefix}nm", "-S", "--size-sort", "--defined-only", str(elf)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise MedyateError(f"{prefix}nm {elf} failed: {r.stderr.strip()}")
    out = []
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out.append({"name": parts[3], "type": parts[2], "addr": int(parts[0], 16),
                        "size": int(parts[1], 16)})
    return out


def memory_report(elf, map_path=None, su_dir=None, board=None,
                  weight_prefixes=WEIGHT_PREFIXES, top: int = 10, stack=None) -> dict:
    """The memory use of a built image.

    elf:      firmware.elf (or the host's native program / shared library)
    map_path: the linker map (for the regions' sizes); default: next to the ELF
    su_dir:   where the .su files are; default: the ELF's directory
    board:    name or Board, for capacities and the binutils prefix
    stack:    the image's StackBound if the build computed it (else computed here)
    """
    elf = Path(elf)
    if not elf.is_file():
        raise MedyateError(f"no image at {elf}: build first")
    b = get_board(board) if board is not None else None
    prefix = b.tool_prefix if b is not None else (
        "arm-none-eabi-" if elf.suffix == ".elf" else "")
    map_path = Path(map_path) if map_path else elf.with_name("firmware.map")
    su_dir = Path(su_dir) if su_dir else elf.parent

    sections = section_sizes(elf, prefix)
    regions = {}
    if map_path.is_file():
        regions = parse_map_regions(map_path.read_text(errors="replace"))
    syms = _nm(elf, prefix)

    code = const = weights = 0
    data = bss = 0
    ram_syms, flash_syms = [], []
    for s in syms:
        t = s["type"].lower()
        if t in ("t", "w"):
            code += s["size"]
            flash_syms.append(s)
        elif t == "r":
            if s["name"].startswith(tuple(weight_prefixes)):
                weights += s["size"]
            else:
                const += s["size"]
            flash_syms.append(s)
        elif t == "d":
            data += s["size"]
            ram_syms.append(s)
        elif t in ("b", "c"):
            bss += s["size"]
            ram_syms.append(s)

    stack_reserve = sections.get(".stack", 0)
    flash_total = sum(v for k, v in sections.items() if k in FLASH_SECTIONS) + \
        sections.get(".data", 0)
    ram_total = stack_reserve + sections.get(".data", 0) + sections.get(".bss", 0)
    flash_cap = regions.get("FLASH", (0, b.flash if b else None))[1] if (regions or b) else None
    ram_cap = regions.get("RAM", (0, b.ram if b else None))[1] if (regions or b) else None

    def biggest(lst):
        return [{"name": s["name"], "size": s["size"], "type": s["type"]}
                for s in sorted(lst, key=lambda s: -s["size"])[:top]]

    frames = stack_usage(su_dir)
    if stack is None and elf.suffix == ".elf":
        stack = stack_bound(elf, su_dir=su_dir, prefix=prefix)
    bound = stack.as_dict() if stack is not None else None
    return {
        "image": str(elf),
        "board": b.name if b else None,
        "flash": {
            "total": flash_total, "capacity": flash_cap,
            "code": sections.get(".text", code) + sections.get(".isr_vector", 0),
            "const": const, "weights": weights,
            "data_init": sections.get(".data", 0),
            "dataset": sections.get(".mdy_dataset", 0),
            "largest": biggest(flash_syms),
        },
        "ram": {
            "total": ram_total, "capacity": ram_cap,
            "data": sections.get(".data", data), "bss": sections.get(".bss", bss),
            "stack_reserve": stack_reserve,
            "largest": biggest(ram_syms),
        },
        "stack": {
            "reserve": stack_reserve,
            # Arm images: the static bound of the deepest call chain (stack_bound)
            "bound": bound["bytes"] if bound else None,
            "deepest_chain": bound["chain"] if bound else None,
            "deepest_frame": frames[0] if frames else None,
            "frames": frames[:top],
        },
        "sections": sections,
    }


def _pct(used, cap) -> str:
    return f"{100.0 * used / cap:5.1f}%" if cap else "     -"


def format_memory_report(rep: dict) -> str:
    """The report as a plain-text table."""
    f, r, s = rep["flash"], rep["ram"], rep["stack"]
    w = 12
    lines = [f"memory of {rep['image']}" + (f" ({rep['board']})" if rep.get("board") else ""),
             f"{'':<26}{'bytes':>{w}}{'of':>{w}}{'used':>8}",
             f"{'flash':<26}{f['total']:>{w}}{(f['capacity'] or '-'):>{w}}"
             f"{_pct(f['total'], f['capacity']):>8}",
             f"{'  code':<26}{f['code']:>{w}}",
             f"{'  weights (const)':<26}{f['weights']:>{w}}",
             f"{'  other const data':<26}{f['const']:>{w}}",
             f"{'  .data initial values':<26}{f['data_init']:>{w}}"]
    if f.get("dataset"):
        lines.append(f"{'  dataset':<26}{f['dataset']:>{w}}")
    lines += [f"{'RAM':<26}{r['total']:>{w}}{(r['capacity'] or '-'):>{w}}"
              f"{_pct(r['total'], r['capacity']):>8}",
              f"{'  stack reserve':<26}{r['stack_reserve']:>{w}}",
              f"{'  .data':<26}{r['data']:>{w}}",
              f"{'  .bss':<26}{r['bss']:>{w}}"]
    if r["largest"]:
        lines.append("largest in RAM:")
        lines += [f"  {x['size']:>10}  {x['name']}" for x in r["largest"][:5]]
    if f["largest"]:
        lines.append("largest in flash:")
        lines += [f"  {x['size']:>10}  {x['name']}" for x in f["largest"][:5]]
    if s.get("bound"):
        chain = " -> ".join(f"{n} ({b})" for n, b in s["deepest_chain"])
        lines.append(f"stack: static bound {s['bound']} bytes of a {s['reserve']}-byte "
                     f"reserve; deepest chain {chain}")
    d = s.get("deepest_frame")
    if d:
        lines.append(f"deepest stack frame: {d['function']} ({d['file']}:{d['line']}) "
                     f"{d['bytes']} bytes ({d['kind']}) of a {s['reserve']}-byte reserve")
    return "\n".join(lines)


def firmware_memory(program, build, board, budget_bytes: int | None = None) -> dict:
    """The plan's RAM as the planner counts it (arena parts, layers' weights,
    static data, stack, share of `budget_bytes`) beside the built image's
    memory report (absent for a host build without a library)."""
    from ..planner.footprint import memory_plan
    b = get_board(board)
    out = {"board": b.name, "plan": memory_plan(program, b, budget_bytes)}
    image = build.lib if b.is_native else build.elf
    if image is not None:
        out["image"] = memory_report(image, board=b, stack=build.stack)
    return out


def format_firmware_memory(rep: dict) -> str:
    from ..planner.footprint import format_memory_plan
    lines = [format_memory_plan(rep["plan"])]
    if "image" in rep:
        lines += ["", format_memory_report(rep["image"])]
    return "\n".join(lines)
