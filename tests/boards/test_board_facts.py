"""Board facts live in boards/<name>/board.json and are read through
medyate.boards only: QEMU's machine and dataset address, the flash address
and the probe settings come from there, and no other module spells them."""
from __future__ import annotations

import json
import re
from pathlib import Path

from medyate.boards import BOARDS_DIR, emulated_board, get_board, list_boards
from medyate.session.qemu import qemu_command

PACKAGE = Path(__file__).resolve().parents[2] / "host" / "medyate"


def _spec(name):
    return json.loads((BOARDS_DIR / name / "board.json").read_text())


def test_qemu_runs_the_boards_machine_and_loads_data_at_its_address():
    b = emulated_board()
    spec = _spec(b.name)
    cmd = qemu_command("fw.elf", 1234, dataset="d.bin")
    assert cmd[cmd.index("-M") + 1] == spec["qemu"]["machine"]
    assert cmd[cmd.index("-icount") + 1] == spec["qemu"]["icount"]
    addr = int(spec["dataset"]["address"], 16)
    assert f"loader,file=d.bin,addr=0x{addr:08x},force-raw=on" in cmd
    assert "-icount" not in qemu_command("fw.elf", 1234, icount=False)


def test_every_board_fact_is_read_from_board_json():
    for b in list_boards():
        spec = _spec(b.name)
        assert b.is_emulated == ("qemu" in spec)
        if "flash_address" in spec:
            assert b.flash_address == int(spec["flash_address"], 16)
        assert b.serial_port_globs == tuple(spec.get("serial", {}).get("port_globs", []))
        for key in ("pyocd_target", "pyocd_pack", "openocd_config", "mass_storage_label",
                    "connect_hint"):
            assert getattr(b, key) == spec.get(key, "")
    assert get_board("nucleo-f746").fact("pyocd_target") == "stm32f746zgtx"


def test_no_module_but_boards_spells_a_board_fact():
    facts = set()
    for b in list_boards():
        spec = _spec(b.name)
        facts |= {spec.get("flash_address"), spec.get("dataset", {}).get("address"),
                  spec.get("qemu", {}).get("machine"), spec.get("pyocd_target"),
                  spec.get("pyocd_pack"), spec.get("openocd_config"),
                  spec.get("mass_storage_label")}
        facts |= set(spec.get("serial", {}).get("port_globs", []))
    facts.discard(None)
    names = sorted((b.name for b in list_boards()), key=len, reverse=True)
    found = []
    for f in PACKAGE.rglob("*.py"):
        if f.name == "boards.py" and f.parent == PACKAGE:
            continue
        text = f.read_text()
        for name in names:          # a board's name may contain its machine's
            text = text.replace(name, "")
        for fact in facts:
            # an address also counts in another spelling (0x8000000)
            pat = re.escape(fact) if not fact.startswith("0x") else \
                "0x0*" + re.escape(fact[2:].lstrip("0"))
            if re.search(pat, text, re.I):
                found.append(f"{f.relative_to(PACKAGE)}: {fact}")
    assert not found, found
