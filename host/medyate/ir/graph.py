"""The training IR: the one model description shared by profiler, planner,
codegen and trainer.

After import (see `onnx_import`), a `Graph` holds only the canonical ops below,
with static NCHW shapes (batch 1), weights as numpy arrays, constants folded and
BatchNormalization folded into the conv before it. Node and tensor names are the
ONNX file's, so every result maps back to it.

Canonical ops and their attributes:
    Conv               strides (sh, sw), pads (top, left, bottom, right), group,
                       kernel (kh, kw); params weight [O, I/g, kh, kw], bias [O]
    Gemm               fully connected y = W x + b; params weight [O, I], bias [O]
                       (Gemm with transB, MatMul + Add are all lowered to this)
    Relu, Clip         Clip: min, max (floats; +-inf when absent)
    HardSigmoid        alpha, beta
    HardSwish
    Add                same-shape elementwise (residual)
    Mul                x [1,C,H,W] * s [1,C,1,1] (squeeze-excite); inputs (x, s)
    GlobalAveragePool
    AveragePool        kernel, strides, pads, count_include_pad
    MaxPool            kernel, strides, pads
    Flatten, Reshape   shape change only
    Concat             axis (1 = channels)
    Softmax            axis; only as the graph's output
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

CANONICAL_OPS = (
    "Conv", "Gemm", "Relu", "Clip", "HardSigmoid", "HardSwish", "Add", "Mul",
    "GlobalAveragePool", "AveragePool", "MaxPool", "Flatten", "Reshape",
    "Concat", "Softmax",
)

# Ops whose weights can be trained (the "layers" of the algorithm).
TRAINABLE_OPS = ("Conv", "Gemm")


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def trainable(self) -> bool:
        return self.op in TRAINABLE_OPS

    @property
    def is_depthwise(self) -> bool:
        if self.op != "Conv":
            return False
        # groups == in_channels <=> one input channel per group
        return self.attrs.get("group", 1) > 1 and self.params["weight"].shape[1] == 1


@dataclass
class Graph:
    name: str
    nodes: list[Node]                    # topological order
    shapes: dict[str, tuple[int, ...]]   # every activation tensor, NCHW, batch 1
    input: str
    output: str
    source_sha256: str = ""              # of the ONNX file it came from

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, tensor: str) -> Node | None:
        for n in self.nodes:
            if tensor in n.outputs:
                return n
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def trainable_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.trainable]

    def copy(self) -> "Graph":
        """Deep copy (weights too): training changes weights in place."""
        nodes = [dataclasses.replace(n, inputs=list(n.inputs), outputs=list(n.outputs),
                                     attrs=dict(n.attrs),
                                     params={k: v.copy() for k, v in n.params.items()})
                 for n in self.nodes]
        return dataclasses.replace(self, nodes=nodes, shapes=dict(self.shapes))

    def with_weights(self, weights: dict) -> "Graph":
        """A copy with new (weight, bias) for the named layers: e.g. the
        fine-tuned layers an engine reports, for export."""
        g = self.copy()
        for name, (w, b) in weights.items():
            g.node(name).params["weight"] = w
            g.node(name).params["bias"] = b
        return g
