"""IR `Graph` -> ONNX model (the fine-tuned model a user takes away).

BatchNormalization stays folded (the exported Conv carries the folded
weights); every other canonical op maps one to one onto its ONNX op, with the
original node and tensor names, so the file reads like the one imported.
"""
from __future__ import annotations

import math

import numpy as np

OPSET = 17


def export_onnx(graph, path: str, producer: str = "medyate") -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits: list = []
    nodes: list = []

    def const(name: str, arr: np.ndarray) -> str:
        # A fine-tuned model with NaN/inf weights computes nothing useful:
        # refuse it here, at the writer, whatever produced it.
        if np.issubdtype(np.asarray(arr).dtype, np.floating) and \
                not np.all(np.isfinite(arr)):
            from ..errors import MedyateError
            raise MedyateError(f"not exporting {path}: tensor {name} has "
                               f"{int(np.sum(~np.isfinite(arr)))} non-finite values")
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    for n in graph.nodes:
        a = n.attrs
        ins = list(n.inputs)
        if n.op == "Conv":
            kh, kw = a["kernel"]
            node = helper.make_node(
                "Conv", ins + [const(n.name + ".weight", n.params["weight"].astype(np.float32)),
                               const(n.name + ".bias", n.params["bias"].astype(np.float32))],
                n.outputs, name=n.name, kernel_shape=[kh, kw], strides=list(a["strides"]),
                pads=[a["pads"][0], a["pads"][1], a["pads"][2], a["pads"][3]],
                group=a.get("group", 1))
        elif n.op == "Gemm":
            node = helper.make_node(
                "Gemm", ins + [const(n.name + ".weight", n.params["weight"].astype(np.float32)),
                               const(n.name + ".bias", n.params["bias"].astype(np.float32))],
                n.outputs, name=n.name, transB=1)
        elif n.op == "Clip":
            lo, hi = a.get("min", -math.inf), a.get("max", math.inf)
            extra = [const(n.name + ".min", np.float32(lo)) if math.isfinite(lo) else "",
                     const(n.name + ".max", np.float32(hi)) if math.isfinite(hi) else ""]
            while extra and extra[-1] == "":
                extra.pop()
            node = helper.make_node("Clip", ins + extra, n.outputs, name=n.name)
        elif n.op == "HardSigmoid":
            node = helper.make_node("HardSigmoid", ins, n.outputs, name=n.name,
                                    alpha=float(a["alpha"]), beta=float(a["beta"]))
        elif n.op in ("AveragePool", "MaxPool"):
            kw_ = dict(kernel_shape=list(a["kernel"]), strides=list(a["strides"]),
                       pads=list(a["pads"]))
            if n.op == "AveragePool":
                kw_["count_include_pad"] = int(a.get("count_include_pad", 0))
            node = helper.make_node(n.op, ins, n.outputs, name=n.name, **kw_)
        elif n.op in ("Flatten", "Reshape"):
            shape = np.array((-1,) + tuple(graph.shapes[n.outputs[0]][1:]), dtype=np.int64)
            node = helper.make_node("Reshape", ins + [const(n.name + ".shape", shape)],
                                    n.outputs, name=n.name)
        elif n.op == "Concat":
            node = helper.make_node("Concat", ins, n.outputs, name=n.name, axis=a.get("axis", 1))
        elif n.op == "Softmax":
            node = helper.make_node("Softmax", ins, n.outputs, name=n.name, axis=a.get("axis", -1))
        else:  # Relu, HardSwish, Add, Mul, GlobalAveragePool: no attributes
            node = helper.make_node(n.op, ins, n.outputs, name=n.name)
        nodes.append(node)

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
