"""Model profile: per-layer sizes and costs, forward peak memory, and what full
fine-tuning would need (the upper bound a memory budget is compared against).

Memory figures are float32 bytes (4 per element) with batch 1.

Peak forward activation bytes (simple schedule): nodes run in the IR's topological
order; a tensor is live from the step that produces it (the graph input from the start)
to the step of its last consumer (the graph output to the end). Every tensor has its own
buffer, reshapes included. The peak is the largest sum of live tensors over the steps.

Training memory of full fine-tuning (every Conv/Gemm trained, SGD without momentum):

    training_bytes = weight_bytes + weight_grad_bytes + saved_activation_bytes
                     + peak_gradient_bytes

- weight_bytes: every parameter of the model, in RAM (it is updated).
- weight_grad_bytes: one gradient per trainable parameter (Conv/Gemm weight and bias).
- saved_activation_bytes: what the backward pass needs from the forward pass, each
  tensor counted once: the input of every Conv/Gemm (for its weight gradient); a copy of
  x for HardSwish and for the x input of a squeeze-excite Mul, plus its scale vector s;
  one bit per element for Relu/Clip/HardSigmoid (their derivative masks), the window
  position of each output's maximum for MaxPool (ceil(log2(k*k)) bits); the
  Softmax output (for the loss gradient). Ops before the first trainable node need no
  backward and save nothing.
- peak_gradient_bytes: activation-gradient buffers during backward, in reverse
  topological order: the gradient of a tensor exists from the backward of its last
  consumer to the backward of its producer; the peak is taken over the steps. The
  input's gradient, and those of tensors that do not depend on any trainable node, are
  never computed.
"""
from __future__ import annotations

import math

from .ir import cost
from .ir.graph import Graph
from .planner.arena import window_index_bytes

B = cost.BYTES_PER_ELEMENT
_MASK_OPS = ("Relu", "Clip", "HardSigmoid")


def _numel(shape) -> int:
    return int(math.prod(shape))


def _tbytes(graph: Graph, t: str) -> int:
    return _numel(graph.shapes[t]) * B


def peak_forward_bytes(graph: Graph) -> tuple[int, str]:
    """(peak bytes, name of the node running at the peak) under the simple schedule."""
    last_use: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for t in n.inputs:
            last_use[t] = i
    end = len(graph.nodes)
    last_use[graph.output] = end
    born = {graph.input: -1}
    for i, n in enumerate(graph.nodes):
        for t in n.outputs:
            born[t] = i
    peak, at = 0, graph.nodes[0].name if graph.nodes else ""
    for i, n in enumerate(graph.nodes):
        live = sum(_tbytes(graph, t) for t, b in born.items()
                   if b <= i and last_use.get(t, b) >= i)
        if live > peak:
            peak, at = live, n.name
    return peak, at


def _requires_grad(graph: Graph) -> set[str]:
    req: set[str] = set()
    for n in graph.nodes:
        if n.trainable or any(t in req for t in n.inputs):
            req.update(n.outputs)
    return req


def training_memory(graph: Graph) -> dict:
    """Full fine-tuning memory, by component (see the module docstring)."""
    req = _requires_grad(graph)
    weight_bytes = sum(cost.param_count(n) for n in graph.nodes) * B
    wgrad_bytes = sum(cost.param_count(n) for n in graph.trainable_nodes()) * B
    saved_float: set[str] = set()
    mask_bytes = 0
    extra_bytes = 0
    for n in graph.nodes:
        runs_backward = n.trainable or any(t in req for t in n.inputs)
        if not runs_backward:
            continue
        if n.trainable:
            saved_float.add(n.inputs[0])
        elif n.op == "MaxPool":
            # the window position of each output's maximum, as the planner
            # and the C kernel keep it (one bit per input cannot tell
            # overlapping windows apart)
            k = n.attrs["kernel"]
            mask_bytes += window_index_bytes(k[0] * k[1], _numel(graph.shapes[n.outputs[0]]))
        elif n.op in _MASK_OPS:
            mask_bytes += -(-_numel(graph.shapes[n.inputs[0]]) // 8)
        elif n.op == "HardSwish":
            saved_float.add(n.inputs[0])
        elif n.op == "Mul":
            saved_float.update(n.inputs[:2])
        elif n.op == "Softmax":
            extra_bytes += _tbytes(graph, n.outputs[0])
    saved = sum(_tbytes(graph, t) for t in saved_float) + mask_bytes + extra_bytes

    # Activation-gradient buffers over the backward pass.
    order = list(reversed(graph.nodes))
    live: dict[str, int] = {}
    peak = 0
    if graph.output in req:
        live[graph.output] = _tbytes(graph, graph.output)
        peak = sum(live.values())
    for n in order:
        for t in n.inputs:
            if t in req and t not in live:
                live[t] = _tbytes(graph, t)
        peak = max(peak, sum(live.values()))
        for t in n.outputs:
            live.pop(t, None)
    return {
        "weight_bytes": weight_bytes,
        "weight_grad_bytes": wgrad_bytes,
        "saved_activation_bytes": saved,
        "peak_gradient_bytes": peak,
        "training_bytes": weight_bytes + wgrad_bytes + saved + peak,
    }


def planned_full_finetune(graph: Graph) -> dict | None:
    """What this engine's planner allocates to train every channel and bias of
    every layer (per-sample backward, gradients accumulated over the batch):
    the exact arena plus the weights in RAM. None if the graph cannot be lowered."""
    from .errors import MedyateError
    from .planner.arena import plan_arena
    from .planner.footprint import memory_breakdown
    from .planner.program import lower
    try:
        prog = lower(graph.copy(), [n.name for n in graph.trainable_nodes()], True)
        plan_arena(prog, sum(l.cost * l.channels for l in prog.layers))
    except MedyateError:
        return None
    mem = memory_breakdown(prog)
    return {"arena_bytes": mem["arena"], "weight_bytes": mem["trainable_weights"],
            "training_bytes": mem["total"]}


def profile_graph(graph: Graph) -> dict:
    """Per-layer and total figures of an imported graph, JSON-serialisable."""
    layers = []
    for n in graph.nodes:
        out = n.outputs[0]
        rec = {
            "name": n.name,
            "op": n.op,
            "input_shapes": [list(graph.shapes[t]) for t in n.inputs],
            "output_shape": list(graph.shapes[out]),
            "params": cost.param_count(n),
            "macs": cost.node_macs(graph, n),
            "activation_bytes": _tbytes(graph, out),
        }
        if n.op == "Conv":
            rec["depthwise"] = n.is_depthwise
            rec["attrs"] = {"kernel": list(n.attrs["kernel"]), "strides": list(n.attrs["strides"]),
                            "pads": list(n.attrs["pads"]), "group": n.attrs["group"]}
        if n.trainable:
            s, m = cost.channel_cost(graph, n)
            rec["trainable"] = {
                "input_channels": cost.input_channels(graph, n),
                "slice_elems": s,
                "map_elems": m,
                "channel_cost_elems": s + m,
                "channel_cost_bytes": (s + m) * B,
                "wgrad_macs_per_channel": cost.wgrad_macs_per_channel(graph, n),
            }
        layers.append(rec)
    peak, peak_at = peak_forward_bytes(graph)
    params = sum(cost.param_count(n) for n in graph.nodes)
    totals = {
        "layers": len(graph.nodes),
        "trainable_layers": len(graph.trainable_nodes()),
        "params": params,
        "param_bytes": params * B,
        "macs": sum(cost.node_macs(graph, n) for n in graph.nodes),
        "peak_forward_activation_bytes": peak,
        "peak_forward_at": peak_at,
        "input_bytes": _tbytes(graph, graph.input),
        "full_finetune": training_memory(graph),
        "full_finetune_planned": planned_full_finetune(graph),
    }
    return {
        "model": graph.name,
        "source_sha256": graph.source_sha256,
        "input": {"name": graph.input, "shape": list(graph.shapes[graph.input])},
        "output": {"name": graph.output, "shape": list(graph.shapes[graph.output])},
        "layers": layers,
        "totals": totals,
    }


def profile_model(path, input_shape: tuple | None = None) -> dict:
    from .ir.onnx_import import load_onnx
    return profile_graph(load_onnx(path, input_shape))


def _shape(s) -> str:
    return "x".join(str(d) for d in s)


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1048576:.2f} MiB"


def format_report(rep: dict) -> str:
    """Readable table of a `profile_graph` report."""
    hdr = ("#", "name", "op", "input", "output", "params", "MACs", "act bytes",
           "ch", "slice", "map", "ch cost B")
    rows = []
    for i, L in enumerate(rep["layers"]):
        tr = L.get("trainable")
        op = L["op"] + ("(dw)" if L.get("depthwise") else "")
        if "attrs" in L:
            k = L["attrs"]["kernel"]
            st = L["attrs"]["strides"]
            op += f" {k[0]}x{k[1]}" + (f"/{st[0]},{st[1]}" if st != [1, 1] else "")
        rows.append((
            str(i), L["name"], op, " ".join(_shape(s) for s in L["input_shapes"]),
            _shape(L["output_shape"]), f"{L['params']:,}", f"{L['macs']:,}",
            f"{L['activation_bytes']:,}",
            str(tr["input_channels"]) if tr else "", f"{tr['slice_elems']:,}" if tr else "",
            f"{tr['map_elems']:,}" if tr else "", f"{tr['channel_cost_bytes']:,}" if tr else "",
        ))
    widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h)
              for j, h in enumerate(hdr)]
    right = {0, 5, 6, 7, 8, 9, 10, 11}

    def line(r):
        return "  ".join(c.rjust(w) if j in right else c.ljust(w)
                         for j, (c, w) in enumerate(zip(r, widths))).rstrip()

    t = rep["totals"]
    ft = t["full_finetune"]
    out = [f"model {rep['model']}  input {rep['input']['name']} "
           f"{_shape(rep['input']['shape'])}  output {rep['output']['name']} "
           f"{_shape(rep['output']['shape'])}", "", line(hdr),
           line(tuple("-" * w for w in widths))]
    out += [line(r) for r in rows]
    out += [
        "",
        "per trainable layer, per input channel: slice = weight-gradient elements, "
        "map = saved input elements, ch cost B = (slice + map) * 4",
        "",
        f"layers                 {t['layers']} ({t['trainable_layers']} trainable)",
        f"parameters             {t['params']:,} ({t['param_bytes']:,} bytes, {_kb(t['param_bytes'])})",
        f"MACs (forward)         {t['macs']:,}",
        f"peak forward memory    {t['peak_forward_activation_bytes']:,} bytes "
        f"({_kb(t['peak_forward_activation_bytes'])}, at {t['peak_forward_at']})",
        "full fine-tuning memory "
        f"{ft['training_bytes']:,} bytes ({_kb(ft['training_bytes'])}) = "
        f"weights {ft['weight_bytes']:,} + weight grads {ft['weight_grad_bytes']:,} + "
        f"saved activations {ft['saved_activation_bytes']:,} + "
        f"gradient buffers {ft['peak_gradient_bytes']:,}",
    ]
    pl = t.get("full_finetune_planned")
    if pl:
        out.append(f"  as this engine plans it: {pl['training_bytes']:,} bytes "
                   f"({_kb(pl['training_bytes'])}) = arena {pl['arena_bytes']:,} + "
                   f"weights in RAM {pl['weight_bytes']:,}")
    return "\n".join(out)
