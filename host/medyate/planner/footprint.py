"""Everything a training plan costs in device RAM, in one place: the arena and
the trainable weights (exact, from the planner) plus what the firmware itself
holds (serial buffers and runtime state, measured from the map file of a real
build by tests/boards) and the stack the board reserves."""
from __future__ import annotations

import json
from pathlib import Path

BOARDS = Path(__file__).resolve().parents[3] / "boards"

# Static RAM of the device code outside the arena and the model's weights:
# protocol buffers and state (4,348 B of .bss), the runtime context, board
# drivers and libc data, rounded up. tests/boards checks it against the map
# file of a real image, so it cannot silently drift.
DEVICE_STATIC_BYTES = 6 * 1024


def board_facts(board: str) -> dict:
    path = BOARDS / board / "board.json"
    if not path.is_file():
        from ..errors import MedyateError
        known = sorted(p.parent.name for p in BOARDS.glob("*/board.json"))
        raise MedyateError(f"unknown board {board!r}; known boards: {', '.join(known)}")
    return json.loads(path.read_text())


def device_overhead(board: str) -> dict[str, int]:
    """Bytes of RAM a board's firmware needs besides the plan itself."""
    if board == "host":
        return {"static": 0, "stack": 0}
    facts = board_facts(board)
    return {"static": DEVICE_STATIC_BYTES, "stack": int(facts.get("stack_default", 16384))}


def ram_footprint(plan_memory: dict[str, int], board: str) -> dict[str, int]:
    """plan_memory: engine.host.memory_breakdown(program)."""
    over = device_overhead(board)
    out = {"arena": plan_memory["arena"], "trainable_weights": plan_memory["trainable_weights"],
           "static": over["static"], "stack": over["stack"]}
    out["total"] = sum(out.values())
    return out
