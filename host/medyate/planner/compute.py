"""MACs of one training step for a program and a selection: what the runtime
actually executes (forward of every op; input gradients of the ops above the
deepest trained op; weight gradients of the selected channels only)."""
from __future__ import annotations

from .program import CONV2D, DEPTHWISE_CONV2D, FULLY_CONNECTED, Program


def op_macs(program: Program, i: int) -> int:
    op = program.ops[i]
    p = op.params
    if op.kind == CONV2D:
        return p["out_h"] * p["out_w"] * p["out_c"] * p["k_h"] * p["k_w"] * p["in_c"]
    if op.kind == DEPTHWISE_CONV2D:
        return p["out_h"] * p["out_w"] * p["out_c"] * p["k_h"] * p["k_w"]
    if op.kind == FULLY_CONNECTED:
        return p["in_c"] * p["out_c"]
    return 0


def wgrad_macs_per_channel(program: Program, layer: int) -> int:
    l = program.layers[layer]
    p = program.ops[l.op].params
    return l.slice_size * p["out_h"] * p["out_w"]


def step_macs(program: Program, selection, train_bias_layers=()) -> dict[str, int]:
    """selection: (layer index, channel) pairs. Returns forward, backward_input,
    backward_weight and total MACs of one sample."""
    forward = sum(op_macs(program, i) for i in range(len(program.ops)))
    layers = {li for li, _ in selection} | set(train_bias_layers)
    first = min((program.layers[li].op for li in layers), default=len(program.ops))
    backward_input = sum(op_macs(program, i) for i in range(first + 1, len(program.ops)))
    backward_weight = sum(wgrad_macs_per_channel(program, li) for li, _ in selection)
    return {"forward": forward, "backward_input": backward_input,
            "backward_weight": backward_weight,
            "total": forward + backward_input + backward_weight}
