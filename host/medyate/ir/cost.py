"""The cost model shared by the profiler and the planner (TraDy/MeDyate, see
docs REFERENCE.md section 1).

The unit of selection is an *input channel* c of a trainable node. Training it needs
the weight-gradient slice W[:, c] and the saved input map A[c]:

    Conv, dense (group 1, includes pointwise): slice = O * kh * kw, map = H_in * W_in
    Conv, depthwise (multiplier m = O / C):     slice = m * kh * kw, map = H_in * W_in
    Gemm [O, I]:                                slice = O,           map = 1

Costs are in elements (float32: 4 bytes each). The compute cost of one channel's
weight gradient is D^2 * C' * H' * W' MACs for a dense conv, m * kh * kw * H' * W' for
a depthwise conv and O for Gemm.
"""
from __future__ import annotations

import math

from .graph import Graph, Node

BYTES_PER_ELEMENT = 4  # float32 everywhere in training


def _numel(shape) -> int:
    return int(math.prod(shape))


def input_channels(graph: Graph, node: Node) -> int:
    """Number of selectable input channels of a trainable node."""
    if node.op == "Conv":
        return graph.shapes[node.inputs[0]][1]
    if node.op == "Gemm":
        return node.params["weight"].shape[1]
    raise ValueError(f"{node.name} ({node.op}) is not trainable")


def _multiplier(graph: Graph, node: Node) -> int:
    O = node.params["weight"].shape[0]
    return O // graph.shapes[node.inputs[0]][1]


def channel_cost(graph: Graph, node: Node) -> tuple[int, int]:
    """(slice_elems, map_elems) of one input channel of a trainable node."""
    if node.op == "Conv":
        O, _, kh, kw = node.params["weight"].shape
        _, _, H, W = graph.shapes[node.inputs[0]]
        if node.is_depthwise:
            return _multiplier(graph, node) * kh * kw, H * W
        return O * kh * kw, H * W
    if node.op == "Gemm":
        return node.params["weight"].shape[0], 1
    raise ValueError(f"{node.name} ({node.op}) is not trainable")


def channel_cost_elems(graph: Graph, node: Node) -> int:
    """slice + map: the paper-style cost of one input channel, in elements."""
    s, m = channel_cost(graph, node)
    return s + m


def wgrad_macs_per_channel(graph: Graph, node: Node) -> int:
    """MACs to compute one input channel's weight-gradient slice."""
    if node.op == "Conv":
        O, _, kh, kw = node.params["weight"].shape
        _, _, Ho, Wo = graph.shapes[node.outputs[0]]
        if node.is_depthwise:
            return _multiplier(graph, node) * kh * kw * Ho * Wo
        return O * kh * kw * Ho * Wo
    if node.op == "Gemm":
        return node.params["weight"].shape[0]
    raise ValueError(f"{node.name} ({node.op}) is not trainable")


def node_macs(graph: Graph, node: Node) -> int:
    """Forward multiply-accumulates of Conv and Gemm (weight * activation products).

    Every other op counts 0 MACs: their cost is elementwise and small beside the
    convolutions; the profiler reports it through activation sizes instead.
    """
    if node.op == "Conv":
        O, Ig, kh, kw = node.params["weight"].shape
        return O * Ig * kh * kw * _numel(graph.shapes[node.outputs[0]][2:])
    if node.op == "Gemm":
        O, I = node.params["weight"].shape
        return O * I
    return 0


def param_count(node: Node) -> int:
    """Number of parameters (weights and biases) held by a node."""
    return int(sum(v.size for v in node.params.values()))
