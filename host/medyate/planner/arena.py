"""Static arena plan for one training step.

Every buffer the runtime touches gets a lifetime on a timeline of one sample:
forward of op i at t = i, the loss at t = N, backward of op i at t = 2N - i;
buffers that outlive a sample (the channel pool, the selection, statistics,
bias gradients) live over the whole timeline. Offsets are then assigned
greedily, largest buffer first, at the lowest aligned offset that overlaps no
buffer live at the same time (the TFLite-Micro greedy planner). The lower
bound reported beside the arena size is the most bytes live at any one time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import MedyateError
from .program import (CLAMP, CONCAT, HARDSIGMOID, HARDSWISH, IN_PLACE, MAXPOOL, MUL_CHANNEL,
                      RESHAPE, S8, Program)
from .int8 import scratch_bytes

ALIGN = 16
NO_OFFSET = 0xFFFFFFFF


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Buffer:
    name: str
    kind: str          # value | grad | saved | scratch | pool | selection | stats | bias_grad
    size: int          # bytes, aligned
    start: int
    end: int           # inclusive
    offset: int = -1

    def overlaps(self, other: "Buffer") -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass
class ArenaPlan:
    budget_elements: int
    max_selected: int
    arena_size: int
    lower_bound: int
    pool_offset: int
    pool_size: int
    sel_offset: int
    stats_offset: int
    buffers: list[Buffer] = field(default_factory=list)

    def parts(self) -> dict[str, int]:
        """Bytes per kind of buffer (summed sizes; reuse makes the arena smaller)."""
        out: dict[str, int] = {}
        for b in self.buffers:
            out[b.kind] = out.get(b.kind, 0) + b.size
        return out


def max_selected(program: Program, budget_elements: int) -> int:
    """Most channels any selection within the budget can hold: the cheapest first."""
    costs = sorted(l.cost for l in program.layers for _ in range(l.channels))
    total = n = 0
    for c in costs:
        if total + c > budget_elements:
            break
        total += c
        n += 1
    return n


def smallest_budget(program: Program) -> int:
    """Elements of the cheapest single channel (the smallest useful budget);
    a bias-only layer has no channel to count."""
    return min((l.cost for l in program.layers if l.channels), default=0)


def window_index_bytes(window: int, outputs: int) -> int:
    """Backward state of a max pool: the window position of each of `outputs`
    maxima in ceil(log2(window)) bits. Same formula as
    mdy_maxpool_nhwc_f32_mask_bytes (checked against the C function in the
    tests); medyate.profile counts with it too."""
    bits = max(0, (int(window) - 1).bit_length())
    return (int(outputs) * bits + 7) // 8


def _maxpool_mask_bytes(params: dict) -> int:
    return window_index_bytes(params["k_h"] * params["k_w"],
                              params["out_h"] * params["out_w"] * params["c"])


def _saved_bytes(program: Program, i: int) -> int:
    op = program.ops[i]
    y = program.tensors[op.output]
    n = y.numel
    if op.kind in (CLAMP, HARDSIGMOID):
        return (n + 7) // 8
    if op.kind == MAXPOOL:
        return _maxpool_mask_bytes(op.params)
    # copies of the inputs, in their own element type (int8 codes on the int8 path)
    if op.kind == HARDSWISH:
        return program.tensors[op.inputs[0]].nbytes
    if op.kind == MUL_CHANNEL:
        return program.tensors[op.inputs[0]].nbytes + program.tensors[op.inputs[1]].nbytes
    return 0


def plan_arena(program: Program, budget_elements: int) -> ArenaPlan:
    """Decide gradient reach, accumulate flags and every offset; store them in
    `program` (tensors, ops, layers) and return the plan."""
    ops, tensors = program.ops, program.tensors
    n = len(ops)
    d = program.deepest_trainable_op
    if budget_elements < 0:
        raise MedyateError("the channel budget cannot be negative")
    if program.layers and not any(l.train_bias for l in program.layers):
        need = smallest_budget(program)
        if budget_elements < need:
            raise MedyateError(f"channel budget {budget_elements} elements is too small: "
                               f"the cheapest channel of the plan's layers needs {need}")

    def root(t: int) -> int:
        a = tensors[t].alias
        return t if a is None else a

    groups: dict[int, list[int]] = {}
    for t in range(len(tensors)):
        groups.setdefault(root(t), []).append(t)

    # Which tensors need a gradient: produced at or above the deepest trainable op.
    needs_grad = {t for t, x in enumerate(tensors)
                  if x.producer is not None and x.producer >= d}
    needs_grad.add(program.output)
    grad_groups = {root(t) for t in needs_grad}

    # Accumulate flags, walking backward exactly as the runtime does.
    initialised: set[int] = set()
    writes: dict[int, list[int]] = {}      # grad group -> backward times of writers
    for i in range(n - 1, d, -1):
        op = ops[i]
        op.grad_accumulate = [0, 0]
        if op.kind == RESHAPE or root(op.output) not in grad_groups:
            continue
        for j, t in enumerate(op.inputs):
            g = root(t)
            if g not in grad_groups:
                continue
            writes.setdefault(g, []).append(2 * n - i)
            if op.kind in IN_PLACE and g == root(op.output):
                op.grad_accumulate[j] = 0      # dx overwrites dy in place
            else:
                op.grad_accumulate[j] = 1 if g in initialised else 0
            initialised.add(g)

    buffers: list[Buffer] = []
    full = (0, 2 * n)

    # Values. The model input of an int8 program is planned too: a device
    # quantizes each float sample into it (mdy_input_buffer), where no
    # separate sample buffer is needed; an fp32 input is read in place.
    input_in_arena = tensors[program.input].dtype == S8
    for g, members in groups.items():
        if g == program.input and not input_in_arena:
            continue
        start = 0 if g == program.input else min(tensors[t].producer for t in members)
        end = start
        for i, op in enumerate(ops):
            if any(t in members for t in op.inputs):
                end = max(end, i)
        if program.output in members:
            end = max(end, n)
        buffers.append(Buffer(f"value:{tensors[g].name}", "value", _align(tensors[g].nbytes),
                              start, end))
    # Gradients.
    for g in grad_groups:
        members = groups[g]
        start = min(writes.get(g, []) + ([n] if program.output in members else []))
        end = max([2 * n - tensors[t].producer for t in members
                   if tensors[t].producer is not None and tensors[t].producer >= d]
                  + ([n] if program.output in members else []))
        buffers.append(Buffer(f"grad:{tensors[g].name}", "grad",
                              _align(tensors[g].grad_nbytes), start, end))
    # Backward state of the ops the gradient passes through.
    for i in range(d + 1, n):
        op = ops[i]
        has_dx = any(root(t) in grad_groups for t in op.inputs)
        op.saved_bytes = _saved_bytes(program, i) if has_dx else 0
        if op.saved_bytes:
            buffers.append(Buffer(f"saved:{op.name}", "saved", _align(op.saved_bytes), i, 2 * n - i))
    # Kernel scratch, live while the op runs its forward.
    for i, op in enumerate(ops):
        op.scratch_bytes = scratch_bytes(op, tensors)
        if op.scratch_bytes:
            buffers.append(Buffer(f"scratch:{op.name}", "scratch", _align(op.scratch_bytes), i, i))
    # Persistent: channel pool, selection (2 x uint16 per entry), stats, bias grads.
    msel = max_selected(program, budget_elements)
    buffers.append(Buffer("pool", "pool", _align(4 * budget_elements), *full))
    buffers.append(Buffer("selection", "selection", _align(4 * max(msel, 1)), *full))
    buffers.append(Buffer("stats", "stats", _align(4 * max(msel, 1)), *full))
    for l in program.layers:
        if l.train_bias:
            buffers.append(Buffer(f"bias_grad:{l.name}", "bias_grad", _align(4 * l.out_c), *full))

    bound = max(sum(b.size for b in buffers if b.start <= t <= b.end) for t in range(2 * n + 1))
    arena = _place(buffers, bound)

    by_name = {b.name: b for b in buffers}
    for t, x in enumerate(tensors):
        r = root(t)
        x.offset = (None if r == program.input and not input_in_arena
                    else by_name[f"value:{tensors[r].name}"].offset)
        gb = by_name.get(f"grad:{tensors[r].name}") if r in grad_groups else None
        x.grad_offset = gb.offset if gb else None
    for op in ops:
        sb = by_name.get(f"saved:{op.name}")
        op.saved_offset = sb.offset if sb and op.saved_bytes else None
        cb = by_name.get(f"scratch:{op.name}")
        op.scratch_offset = cb.offset if cb else None
    for l in program.layers:
        bb = by_name.get(f"bias_grad:{l.name}")
        l.bias_grad_offset = bb.offset if bb else None

    plan = ArenaPlan(budget_elements, msel, arena, bound, by_name["pool"].offset,
                     4 * budget_elements, by_name["selection"].offset, by_name["stats"].offset,
                     buffers)
    program.memory = plan
    return plan


# Orders the greedy placement is tried in; the smallest arena wins. Largest
# first is TFLite-Micro's; the others win on graphs where a long-lived small
# buffer placed late splits the space the big short-lived ones share.
_ORDERS = (
    lambda b: (-b.size, b.start, b.name),
    lambda b: (-(b.end - b.start), -b.size, b.name),
    lambda b: (-b.size * (b.end - b.start + 1), b.name),
    lambda b: (b.start, -b.size, b.name),
    lambda b: (-b.end, -b.size, b.name),
)


def _place(buffers: list[Buffer], bound: int | None = None, restarts: int = 48) -> int:
    """Greedy first fit among buffers live at the same time, in each of a few
    orders, then (while above `bound` by more than 2%) in seeded random orders;
    keeps the best placement. Deterministic."""
    import random
    best, best_offsets = None, None
    orders = [sorted(buffers, key=key) for key in _ORDERS]
    rng = random.Random(0x5EED)
    for k in range(len(orders) + restarts):
        if k < len(orders):
            ordered = orders[k]
        else:
            if bound is None or best <= bound * 1.02:
                break
            ordered = list(orders[0])
            # perturb largest-first: swap neighbours at random
            for _ in range(len(ordered) // 2):
                i = rng.randrange(len(ordered) - 1) if len(ordered) > 1 else 0
                ordered[i:i + 2] = ordered[i:i + 2][::-1]
        size = _place_in_order(ordered)
        if best is None or size < best:
            best, best_offsets = size, [b.offset for b in buffers]
        if bound is not None and best <= bound:
            break
    for b, off in zip(buffers, best_offsets):
        b.offset = off
    return best


def _place_in_order(ordered: list[Buffer]) -> int:
    placed: list[Buffer] = []
    for b in ordered:
        live = sorted((p for p in placed if p.overlaps(b)), key=lambda p: p.offset)
        off = 0
        for p in live:
            if off + b.size <= p.offset:
                break
            off = max(off, p.offset + p.size)
        b.offset = off
        placed.append(b)
    return max((b.offset + b.size for b in ordered), default=0)
