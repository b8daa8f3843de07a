"""IR `Graph` -> ONNX model (the fine-tuned model a user takes away).

BatchNormalization stays folded (the exported Conv carries the folded
weights); every other canonical op maps one to one onto its ONNX op, with the
original node and tensor names, so the file reads like the one imported.

Two forms:
- float (`qdq=False`, the fp32 path's model): float weights, no Q/DQ;
- QDQ (`qdq=True`, the int8 path's model), the format onnxruntime's quantizer
  writes and `onnx_import` reads back to the same codes and scales: every
  quantized activation tensor (`Graph.quant`, the input included) is followed by
  QuantizeLinear -> DequantizeLinear with its scale and int8 zero point, and its
  consumers read the dequantized tensor (a Flatten/Reshape passes codes through:
  none after it); a Conv/Gemm with int8 weights reads DequantizeLinear(axis=0) of
  its int8 codes (symmetric, per output channel) and of its int32 bias at scale
  s_x * s_w[o]. The codes are the layer's own, or, for a layer whose weights were
  trained (`Graph.with_weights`: real units), the nearest codes of its fixed
  scales (`graph.nearest_codes`, the device's arithmetic), which must give back
  exactly those weights. A float head on dequantized input (`quantize.float_logits`:
  a new head, trained in fp32) stays a float Conv/Gemm after the DequantizeLinear
  of its input.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import MedyateError
from .graph import nearest_codes

OPSET = 17


def _layer_codes(graph, n, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(int8 weight codes, weight scales, int32 bias codes, bias scales) of a Conv/Gemm
    with int8 weights, for its DequantizeLinear initializers."""
    xq = graph.quant.get(n.inputs[0])
    if xq is None:
        raise MedyateError(f"not exporting {path} as QDQ: {n.name} ({n.op}) has int8 weights "
                           f"but its input '{n.inputs[0]}' has no int8 quantization")
    q = n.quant
    w_scale = np.asarray(q.weight_scale, np.float32)
    # the bias scale exactly as import and the int8 kernels compute it
    b_scale = (np.float32(xq.scale) * w_scale).astype(np.float32)
    w, b = n.params["weight"], n.params["bias"]
    wq, bq = nearest_codes(w, w_scale, b, b_scale)
    if q.weight_q is not None:
        wq = np.asarray(q.weight_q, np.int8)
    if q.bias_q is not None:
        bq = np.asarray(q.bias_q, np.int32)
    back = wq.astype(np.float32) * w_scale.reshape((-1,) + (1,) * (wq.ndim - 1))
    if not np.array_equal(back, np.asarray(w, np.float32)):
        k = int(np.sum(back != np.asarray(w, np.float32)))
        raise MedyateError(f"not exporting {path} as QDQ: {k} weight(s) of {n.name} ({n.op}) "
                           "are not int8 codes of its scales (weights trained in fp32 "
                           "export as a float model)")
    return wq, w_scale, bq, b_scale


def export_onnx(graph, path: str, producer: str = "medyate", qdq: bool = False) -> None:
    """Write `graph` to `path`: float ONNX, or with `qdq` the QDQ model of a quantized
    graph (see the module doc)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits: list = []
    nodes: list = []
    if qdq and not graph.is_quantized:
        raise MedyateError(f"not exporting {path} as QDQ: the model {graph.name} is not "
                           "quantized")

    def const(name: str, arr: np.ndarray) -> str:
        # A fine-tuned model with NaN/inf weights computes nothing useful:
        # refuse it here, at the writer, whatever produced it.
        if np.issubdtype(np.asarray(arr).dtype, np.floating) and \
                not np.all(np.isfinite(arr)):
            raise MedyateError(f"not exporting {path}: tensor {name} has "
                               f"{int(np.sum(~np.isfinite(arr)))} non-finite values")
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    # QDQ: what a consumer reads for an IR tensor (its DequantizeLinear's output)
    read: dict[str, str] = {}
    float_tail = set()
    if qdq:
        from .quantize import float_logits
        float_tail = float_logits(graph)

    def quant_dequant(t: str, src: str, dst: str) -> None:
        q = graph.quant[t]
        s = const(f"{t}.scale", np.array(q.scale, np.float32))
        z = const(f"{t}.zero_point", np.array(q.zero_point, np.int8))
        nodes.append(helper.make_node("QuantizeLinear", [src, s, z], [f"{t}.q"],
                                      name=f"{t}.quantize"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{t}.q", s, z], [dst],
                                      name=f"{t}.dequantize"))
        read[t] = dst

    def params(n) -> list[str]:
        """The weight and bias inputs of a Conv/Gemm."""
        if not qdq or n.quant is None or n.name in float_tail:
            return [const(n.name + ".weight", n.params["weight"].astype(np.float32)),
                    const(n.name + ".bias", n.params["bias"].astype(np.float32))]
        wq, ws, bq, bs = _layer_codes(graph, n, path)
        out = []
        for what, codes, scale in (("weight", wq, ws), ("bias", bq, bs)):
            c = const(f"{n.name}.{what}_q", codes)
            s = const(f"{n.name}.{what}_scale", scale)
            z = const(f"{n.name}.{what}_zero_point", np.zeros(len(scale), codes.dtype))
            nodes.append(helper.make_node("DequantizeLinear", [c, s, z], [f"{n.name}.{what}"],
                                          name=f"{n.name}.{what}.dequantize", axis=0))
            out.append(f"{n.name}.{what}")
        return out

    if qdq and graph.input in graph.quant:
        quant_dequant(graph.input, graph.input, f"{graph.input}.dq")
    for n in graph.nodes:
        a = n.attrs
        ins = [read.get(t, t) for t in n.inputs]
        outs = list(n.outputs)
        t = outs[0]
        requant = qdq and t in graph.quant and not (
            n.op in ("Flatten", "Reshape") and graph.quant.get(n.inputs[0]) == graph.quant[t])
        if requant and t == graph.output:
            outs = [f"{t}.float"]       # the graph output is the DequantizeLinear's
        if n.op == "Conv":
            kh, kw = a["kernel"]
            node = helper.make_node(
                "Conv", ins + params(n),
                outs, name=n.name, kernel_shape=[kh, kw], strides=list(a["strides"]),
                pads=[a["pads"][0], a["pads"][1], a["pads"][2], a["pads"][3]],
                group=a.get("group", 1))
        elif n.op == "Gemm":
            node = helper.make_node("Gemm", ins + params(n), outs, name=n.name, transB=1)
        elif n.op == "Clip":
            lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
            extra = [const(n.name + ".min", np.float32(lo)) if math.isfinite(lo) else "",
                     const(n.name + ".max", np.float32(hi)) if math.isfinite(hi) else ""]
            while extra and extra[-1] == "":
                extra.pop()
            node = helper.make_node("Clip", ins + extra, outs, name=n.name)
        elif n.op == "HardSigmoid":
            node = helper.make_node("HardSigmoid", ins, outs, name=n.name,
                                    alpha=float(a["alpha"]), beta=float(a["beta"]))
        elif n.op in ("AveragePool", "MaxPool"):
            kw_ = dict(kernel_shape=list(a["kernel"]), strides=list(a["strides"]),
                       pads=list(a["pads"]))
            if n.op == "AveragePool":
                kw_["count_include_pad"] = int(a.get("count_include_pad", 0))
            node = helper.make_node(n.op, ins, outs, name=n.name, **kw_)
        elif n.op in ("Flatten", "Reshape"):
            shape = np.array((-1,) + tuple(graph.shapes[t][1:]), dtype=np.int64)
            node = helper.make_node("Reshape", ins + [const(n.name + ".shape", shape)],
                                    outs, name=n.name)
        elif n.op == "Concat":
            node = helper.make_node("Concat", ins, outs, name=n.name, axis=a.get("axis", 1))
        elif n.op == "Softmax":
            node = helper.make_node("Softmax", ins, outs, name=n.name, axis=a.get("axis", -1))
        else:  # Relu, HardSwish, Add, Mul, GlobalAveragePool: no attributes
            node = helper.make_node(n.op, ins, outs, name=n.name)
        nodes.append(node)
        if requant:
            quant_dequant(t, outs[0], t if t == graph.output else f"{t}.dq")

    # The batch axis is dynamic, as exporters write it; Reshape targets use
    # -1 there (below) so any batch runs.
    inp = helper.make_tensor_value_info(graph.input, TensorProto.FLOAT,
                                        ["N"] + list(graph.shapes[graph.input][1:]))
    out = helper.make_tensor_value_info(graph.output, TensorProto.FLOAT,
                                        ["N"] + list(graph.shapes[graph.output][1:]))
    g = helper.make_graph(nodes, graph.name or "medyate", [inp], [out], initializer=inits)
    model = helper.make_model(g, producer_name=producer,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
