"""`medyate boards`: the boards medyate can build for."""
from __future__ import annotations

import json


def _kb(n) -> str:
    return f"{n // 1024} KB" if n else "-"


def run(args) -> int:
    from ..boards import list_boards
    boards = list_boards()
    if args.json:
        print(json.dumps([{"name": b.name, "description": b.description, "cpu": b.cpu,
                           "cpu_flags": list(b.cpu_flags), "flash": b.flash, "ram": b.ram,
                           "flash_methods": list(b.flash_methods),
                           "serial": {"baud": b.serial_baud, "port_hint": b.serial_port_hint}}
                          for b in boards], indent=2))
        return 0
    rows = [("BOARD", "CPU", "FLASH", "RAM", "FLASH METHOD", "DESCRIPTION")]
    for b in boards:
        rows.append((b.name, b.cpu, _kb(b.flash), _kb(b.ram),
                     ",".join(b.flash_methods), b.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5])
    return 0


def register(sub) -> None:
    p = sub.add_parser("boards", help="list the boards medyate builds for",
                       description="List the boards in boards/: CPU, memory, how to flash.")
    p.add_argument("--json", action="store_true", help="machine-readable output (default: a table)")
    p.set_defaults(func=run)
