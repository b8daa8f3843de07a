"""Everything a training plan costs in device RAM, in one place:

    memory_breakdown(program)            the plan itself: arena (by part) and the
                                         RAM copy of the trainable weights
    device_overhead(board, model)        what the firmware holds besides: static
                                         data and the board's stack reserve
    ram_footprint(program, board)        the sum of both, what `--ram` is held to
    plan_footprint(graph, plan, board)   the same for a plan.json record
    memory_plan(program, board, budget)  the same with the arena's parts, the
                                         layers' weights and the share of the
                                         user's budget, for the reports

The arena and the weights are exact (from the arena plan); the firmware's own
static data is a bound checked against the map file of a real image by
tests/session; the stack is the board's reserve (`stack_default` in
board.json, read through medyate.boards). `medyate profile`, `plan`, `build`,
the memory report and the device session all count through here.
"""
from __future__ import annotations

# Static RAM of the device code outside the arena, the model's weights and the
# sample buffer: protocol frame buffers and state (4,392 B of .bss), the
# runtime context, board drivers and libc data, rounded up. tests/session
# checks the whole static part against the map file of a real image, so it
# cannot silently drift.
DEVICE_STATIC_BASE_BYTES = 6 * 1024
# The device also keeps one model input (fp32, or int8 codes for an int8 model) to
# assemble a streamed sample
# that is larger than one frame (docs/PROTOCOL.md, SAMPLE_CHUNK). A caller that
# does not name the model gets the bundled models' 28x28x1 input.
DEFAULT_INPUT_BYTES = 4 * 28 * 28 * 1

# What each kind of arena buffer holds (planner.arena's Buffer.kind).
ARENA_PARTS = {
    "value": "forward activations, one buffer per tensor, reused once it is dead",
    "grad": "activation gradients of the backward pass",
    "saved": "backward state of ops the gradient passes through (ReLU masks, "
             "MaxPool window indices, HardSwish/Mul inputs)",
    "scratch": "kernel scratch (int8 pools' per-channel sums), live while the op runs",
    "pool": "channel pool: weight-gradient slices and saved input maps of the "
            "selected channels (the channel budget x 4 B)",
    "selection": "the current selection, (layer, channel) pairs",
    "stats": "squared gradient norm of each selected channel, reported per epoch",
    "bias_grad": "gradients of the biases that train",
}


def layer_weight_bytes(program) -> dict[str, int]:
    """Bytes of each trainable layer's weights and bias, which live in RAM
    (they are updated) while every other parameter stays in flash: fp32
    weights and bias, or int8 weights and an int32 bias. A bias-only layer
    (Layer.bias_only) never writes its weights, so they stay in flash and
    only its bias counts."""
    def nbytes(l):
        op = program.ops[l.op]
        if op.s8 is not None:
            w, b = op.s8.weight_q.size, 4 * op.s8.bias_q.size
        else:
            w, b = 4 * op.weight.size, 4 * op.bias.size
        return b if l.bias_only else w + b
    return {l.name: nbytes(l) for l in program.layers}


def memory_breakdown(program) -> dict[str, int]:
    """Bytes the training plan itself needs in RAM: the arena (and, as
    "arena.<kind>", its parts summed before reuse) and the RAM copy of the
    trainable layers' weights. `total` is their sum."""
    plan = program.memory
    weights = sum(layer_weight_bytes(program).values())
    out = {"arena": plan.arena_size, "arena_lower_bound": plan.lower_bound,
           "trainable_weights": weights}
    out.update({f"arena.{k}": v for k, v in plan.parts().items()})
    out["total"] = plan.arena_size + weights
    return out


def input_bytes(model=None) -> int:
    """Bytes of one model input as the device holds it: fp32, or int8 codes for
    an int8 program. model: a planner Program, an IR graph (fp32), a number of
    bytes, or None (DEFAULT_INPUT_BYTES)."""
    if model is None:
        return DEFAULT_INPUT_BYTES
    if isinstance(model, int):
        return model
    if hasattr(model, "tensors"):          # a Program: its input tensor's own dtype
        t = model.tensors[model.input]
        # an input planned in the arena (int8) needs no buffer of its own
        return 0 if t.offset is not None else t.nbytes
    shape = model.shapes[model.input]      # an IR graph
    n = 1
    for d in tuple(shape)[1:]:             # without the batch dimension
        n *= int(d)
    return 4 * n


def device_overhead(board, model=None) -> dict[str, int]:
    """Bytes of RAM a board's firmware needs besides the plan itself: static
    data (a fixed part plus the sample buffer, one input of `model`, see
    input_bytes) and the board's stack reserve. board: name or Board; the
    host runs the plan in a process and adds nothing."""
    from ..boards import get_board
    b = get_board(board)
    if b.is_native:
        return {"static": 0, "stack": 0}
    return {"static": DEVICE_STATIC_BASE_BYTES + input_bytes(model),
            "stack": int(b.stack_default)}


def ram_footprint(program, board) -> dict[str, int]:
    """The whole device RAM of a planned program on `board`: arena, trainable
    weights, firmware static data, stack, and their total."""
    plan = memory_breakdown(program)
    over = device_overhead(board, program)
    out = {"arena": plan["arena"], "trainable_weights": plan["trainable_weights"],
           "static": over["static"], "stack": over["stack"]}
    out["total"] = sum(out.values())
    return out


def plan_footprint(graph, plan, board) -> dict[str, int]:
    """ram_footprint of a plan (plan.json's TrainPlan) for `graph`: lowered
    and arena-planned exactly as its firmware is built."""
    from .arena import plan_arena
    from .program import lower
    prog = lower(graph.copy(), plan.layers, plan.train_bias,
                 getattr(plan, "precision", "fp32"), getattr(plan, "bias_only", ()))
    plan_arena(prog, plan.budget_elements)
    return ram_footprint(prog, board)


def memory_plan(program, board, budget_bytes: int | None = None) -> dict:
    """ram_footprint with everything a reader needs to check it: the arena's
    lower bound and parts (defined in ARENA_PARTS), each trainable layer's
    weights by name, the channel budget, and the total's share of the user's
    RAM budget (`budget_bytes`, plan.json's ram_bytes) when there is one."""
    from ..boards import get_board
    b = get_board(board)
    plan = memory_breakdown(program)
    fp = ram_footprint(program, b)
    out = {"board": b.name, **fp,
           "arena_lower_bound": plan["arena_lower_bound"],
           "arena_parts": {k[6:]: v for k, v in plan.items() if k.startswith("arena.")},
           "layers": layer_weight_bytes(program),
           "budget_elements": program.memory.budget_elements,
           "max_selected": program.memory.max_selected,
           "budget_bytes": int(budget_bytes) if budget_bytes else None,
           "percent_of_budget": (100.0 * fp["total"] / budget_bytes) if budget_bytes else None,
           "chip_ram": b.ram}
    return out


def format_memory_plan(mp: dict) -> str:
    """memory_plan as a table: every part, defined, and the total against the
    budget."""
    w = 10
    lines = [f"training plan in RAM ({mp['board']}):",
             f"  arena                     {mp['arena']:>{w}}  (lower bound "
             f"{mp['arena_lower_bound']}, {mp['arena'] / max(1, mp['arena_lower_bound']):.3f} x;"
             " the parts below are summed before reuse)"]
    for k, v in sorted(mp["arena_parts"].items(), key=lambda kv: -kv[1]):
        lines.append(f"    {k:<24}{v:>{w}}  {ARENA_PARTS.get(k, '')}")
    lines.append(f"  trainable weights         {mp['trainable_weights']:>{w}}  "
                 "(weights and biases of the pre-selected layers, updated in RAM;"
                 " a bias-only layer's bias alone)")
    for name, v in mp["layers"].items():
        lines.append(f"    {'':<24}{v:>{w}}  {name}")
    lines.append(f"  firmware static (bound)   {mp['static']:>{w}}  "
                 "(protocol buffers, runtime state, one model input)")
    lines.append(f"  stack reserve             {mp['stack']:>{w}}")
    total = f"  total                     {mp['total']:>{w}}"
    if mp.get("budget_bytes"):
        total += f"  = {mp['percent_of_budget']:.1f}% of the {mp['budget_bytes']} B budget"
    if mp.get("chip_ram"):
        total += f" ({mp['chip_ram']} B on the chip)"
    lines.append(total)
    lines.append(f"  (channel budget {mp['budget_elements']} elements, up to "
                 f"{mp['max_selected']} channels per selection)")
    return "\n".join(lines)
