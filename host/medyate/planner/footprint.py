"""Everything a training plan costs in device RAM, in one place: the arena and
the trainable weights (exact, from the planner) plus what the firmware itself
holds (serial buffers and runtime state, measured from the map file of a real
build by tests/boards) and the stack the board reserves."""
from __future__ import annotations

import json
from pathlib import Path

BOARDS = Path(__file__).resolve().parents[3] / "boards"

# Static RAM of the device code outside the arena, the model's weights and the
# sample buffer: protocol frame buffers and state (4,360 B of .bss), the
# runtime context, board drivers and libc data, rounded up. tests/session
# checks the whole static part against the map file of a real image, so it
# cannot silently drift.
DEVICE_STATIC_BASE_BYTES = 6 * 1024
# The device also keeps one model input (fp32) to assemble a streamed sample
# that is larger than one frame (docs/PROTOCOL.md, SAMPLE_CHUNK). A caller that
# does not name the model gets the bundled models' 28x28x1 input.
DEFAULT_INPUT_BYTES = 4 * 28 * 28 * 1


def input_bytes(model=None) -> int:
    """Bytes of one fp32 model input. model: a planner Program, an IR graph,
    a number of bytes, or None (DEFAULT_INPUT_BYTES)."""
    if model is None:
        return DEFAULT_INPUT_BYTES
    if isinstance(model, int):
        return model
    shape = getattr(model, "input_shape", None)
    if shape is None:                      # an IR graph
        shape = model.shapes[model.input]
    n = 1
    for d in tuple(shape)[1:]:             # without the batch dimension
        n *= int(d)
    return 4 * n


def board_facts(board: str) -> dict:
    path = BOARDS / board / "board.json"
    if not path.is_file():
        from ..errors import MedyateError
        known = sorted(p.parent.name for p in BOARDS.glob("*/board.json"))
        raise MedyateError(f"unknown board {board!r}; known boards: {', '.join(known)}")
    return json.loads(path.read_text())


def device_overhead(board: str, model=None) -> dict[str, int]:
    """Bytes of RAM a board's firmware needs besides the plan itself: static
    data (a fixed part plus the sample buffer, one input of `model`, see
    input_bytes) and the stack."""
    if board == "host":
        return {"static": 0, "stack": 0}
    facts = board_facts(board)
    return {"static": DEVICE_STATIC_BASE_BYTES + input_bytes(model),
            "stack": int(facts.get("stack_default", 16384))}


def ram_footprint(plan_memory: dict[str, int], board: str, model=None) -> dict[str, int]:
    """plan_memory: engine.host.memory_breakdown(program); model: as in
    device_overhead (the program, for its input size)."""
    over = device_overhead(board, model)
    out = {"arena": plan_memory["arena"], "trainable_weights": plan_memory["trainable_weights"],
           "static": over["static"], "stack": over["stack"]}
    out["total"] = sum(out.values())
    return out
