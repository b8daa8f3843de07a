"""A new classifier head for a task with another number of classes (IR graph surgery).

A pretrained model ends in a classifier: its last Conv/Gemm, followed only by shape ops
(Flatten/Reshape) and possibly a Softmax. Fine-tuning it on a task with other classes
replaces that layer by one with the task's class count, as TTE does
(`create_quantized_head`), and everything else stays as pretrained.

Initialisation of the new layer (documented, seeded): weights uniform in
±1/sqrt(fan_in), fan_in = in_channels · kh · kw (PyTorch's default for nn.Linear and
nn.Conv2d); bias 0. Zero weights would give the layers before it zero gradients at the
first step (and an all-zero layer ranking); a small random head does not.

Quantized graphs: the new weights are made int8 at once (symmetric, per output channel,
scale = max|w| / 127) and the float weights set to exactly those values, so the fp32 and
int8 views of the new head agree; bias codes 0. Its output, the logits, has no int8
parameters: the int8 path dequantizes the head's int32 accumulator to fp32 logits
(x_scale · w_scale[o]) for the loss, so no output range has to be guessed before
training.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..errors import MedyateError
from .graph import Graph, WeightQuant

_PASS_THROUGH = ("Flatten", "Reshape", "Softmax")

# The initialisation `replace_head` uses, as plan.json records it.
INIT = "uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias 0"


def find_head(graph: Graph):
    """(head node, the nodes after it up to the output) or a MedyateError."""
    path = []
    t = graph.output
    while True:
        n = graph.producer(t)
        if n is None:
            break
        if n.op in ("Conv", "Gemm"):
            return n, list(reversed(path))
        if n.op not in _PASS_THROUGH:
            break
        path.append(n)
        t = n.inputs[0]
    raise MedyateError(
        f"{graph.name}: cannot find the classifier head: the output '{graph.output}' is "
        "not written by a Conv or Gemm followed only by Flatten/Reshape/Softmax, so a "
        "head for another number of classes cannot be fitted automatically")


def n_outputs(graph: Graph) -> int:
    return int(np.prod(graph.shapes[graph.output][1:]))


def replace_head(graph: Graph, n_classes: int, seed: int = 0) -> Graph:
    """A copy of `graph` whose head has `n_classes` outputs (see the module docstring)."""
    if n_classes < 2:
        raise MedyateError(f"a classifier head needs at least 2 classes (got {n_classes})")
    g = graph.copy()
    head, after = find_head(g)
    w = head.params["weight"]
    if head.op == "Conv" and head.attrs.get("group", 1) != 1:
        raise MedyateError(f"{head.name}: the classifier head is a grouped conv; cannot "
                           "replace it")
    fan_in = int(np.prod(w.shape[1:]))
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(fan_in)
    nw = rng.uniform(-bound, bound, (n_classes,) + w.shape[1:])
    nb = np.zeros(n_classes)
    if g.is_quantized:
        scale = (np.abs(nw).reshape(n_classes, -1).max(axis=1) / 127.0).astype(np.float32)
        codes = np.clip(np.round(nw / scale.reshape((-1,) + (1,) * (nw.ndim - 1))),
                        -127, 127).astype(np.int8)
        nw = codes * scale.astype(np.float64).reshape((-1,) + (1,) * (nw.ndim - 1))
        head.quant = WeightQuant(codes, scale, np.zeros(n_classes, np.int32))
        for t in [head.outputs[0]] + [n.outputs[0] for n in after]:
            g.quant.pop(t, None)
    head.params["weight"] = nw.astype(np.float32)
    head.params["bias"] = nb.astype(np.float32)
    # The class dimension changes on the head's output and every shape op after it.
    for t in [head.outputs[0]] + [n.outputs[0] for n in after]:
        s = list(g.shapes[t])
        s[1] = n_classes
        g.shapes[t] = tuple(s)
    for n in after:
        if "shape" in n.attrs:
            n.attrs["shape"] = g.shapes[n.outputs[0]]
    return g


def fit_head(graph: Graph, n_classes: int, seed: int = 0, log=print) -> Graph:
    """`graph` itself when its output count is `n_classes`, else a copy with a new head;
    says so through `log`."""
    have = n_outputs(graph)
    if have == n_classes:
        return graph
    new = replace_head(graph, n_classes, seed)
    head, _ = find_head(new)
    fan_in = int(np.prod(head.params["weight"].shape[1:]))
    if log is not None:
        log(f"the model has {have} outputs and the task {n_classes} classes: head "
            f"{head.name} ({head.op}) replaced by a new one with {n_classes} outputs "
            f"(weights uniform in ±1/sqrt({fan_in}), seed {seed}, bias 0"
            f"{'; int8 per-channel weights' if new.is_quantized else ''})")
    return new


def head_sha256(graph: Graph) -> str:
    """sha256 of the head's parameters (fp32 weight and bias, and the int8 codes and
    scales of a quantized head): what plan.json records of a new head, so build and
    train can check they made exactly the plan's."""
    head, _ = find_head(graph)
    h = hashlib.sha256()
    arrays = [head.params["weight"].astype(np.float32), head.params["bias"].astype(np.float32)]
    q = head.quant
    if q is not None:
        arrays += [a for a in (q.weight_q, q.weight_scale, q.bias_q) if a is not None]
    for a in arrays:
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
