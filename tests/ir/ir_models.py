"""Small ONNX models built with onnx.helper for the import tests."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class M:
    """Incremental model builder: random weights, automatic tensor/node names."""

    def __init__(self, input_shape=(1, 3, 16, 16), opset=17, seed=0, batch="N",
                 input_name="x"):
        self.rng = np.random.default_rng(seed)
        self.opset = opset
        self.nodes: list = []
        self.inits: list = []
        self.input_name = input_name
        dims = list(input_shape)
        if batch is not None:
            dims[0] = batch
        self.input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, dims)
        self._n = 0

    def _name(self, base):
        self._n += 1
        return f"{base}{self._n}"

    # ---- tensors
    def init(self, value, name=None, dtype=np.float32):
        name = name or self._name("p")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def w(self, shape, scale=None, name=None):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        return self.init(self.rng.normal(0, scale, shape), name)

    def const_node(self, value, name=None, dtype=np.float32):
        out = self._name("k")
        t = numpy_helper.from_array(np.asarray(value, dtype), out)
        self.nodes.append(helper.make_node("Constant", [], [out], value=t,
                                           name=name or self._name("Constant")))
        return out

    # ---- nodes
    def node(self, op, inputs, name=None, n_out=1, **attrs):
        outs = [self._name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs,
                                           name=self._name(op) if name is None else name,
                                           **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k, stride=1, group=1, pads=None, bias=True, name=None,
             **attrs):
        kh, kw = (k, k) if isinstance(k, int) else k
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
        wt = self.w((cout, cin // group, kh, kw))
        ins = [x, wt] + ([self.w((cout,), 0.1)] if bias else [])
        if pads is None and "auto_pad" not in attrs:
            pads = [kh // 2, kw // 2, kh // 2, kw // 2]
        if pads is not None:
            attrs["pads"] = pads
        return self.node("Conv", ins, name=name, strides=[sh, sw], group=group,
                         kernel_shape=[kh, kw], **attrs)

    def bn(self, x, c, name=None):
        r = self.rng
        return self.node("BatchNormalization",
                         [x, self.init(r.uniform(0.5, 1.5, c)), self.init(r.normal(0, 0.2, c)),
                          self.init(r.normal(0, 0.2, c)), self.init(r.uniform(0.5, 2, c))],
                         name=name, epsilon=1e-3)

    def relu6(self, x):
        if self.opset < 11:
            return self.node("Clip", [x], min=0.0, max=6.0)
        return self.node("Clip", [x, self.init(0.0), self.init(6.0)])

    def hswish(self, x, variant):
        """HardSwish in the forms exporters and hand-written models produce."""
        if variant == "op":
            return self.node("HardSwish", [x])
        if variant == "hardsigmoid":         # torch < opset 14: x * HardSigmoid(x)
            return self.node("Mul", [x, self.node("HardSigmoid", [x], alpha=1 / 6, beta=0.5)])
        c = self.relu6(self.node("Add", [x, self.init(3.0)]))
        if variant == "div_after_mul":       # x * relu6(x + 3) / 6
            return self.node("Div", [self.node("Mul", [x, c]), self.init(6.0)])
        if variant == "mul_sixth_after_mul":  # (relu6(x + 3) * x) * (1/6)
            return self.node("Mul", [self.node("Mul", [c, x]), self.init(1 / 6)])
        if variant == "div_first":           # x * (relu6(x + 3) / 6)
            return self.node("Mul", [x, self.node("Div", [c, self.init(6.0)])])
        if variant == "mul_sixth_first":     # (relu6(3 + x) * (1/6)) * x
            return self.node("Mul", [self.node("Mul", [c, self.init(1 / 6)]), x])
        raise ValueError(variant)

    def model(self, out, out_name=None) -> onnx.ModelProto:
        if out_name:
            self.nodes.append(helper.make_node("Identity", [out], [out_name],
                                               name=self._name("Identity")))
            out = out_name
        g = helper.make_graph(self.nodes, "test", [self.input],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                              self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = min(m.ir_version, 8)
        return m


# --------------------------------------------------------------------------- models

def mobilenetv2_style(res=32, classes=10, seed=0) -> onnx.ModelProto:
    """Stem, inverted residual blocks (expand 1x1 + BN + ReLU6, depthwise 3x3 + BN +
    ReLU6, project 1x1 + BN, residual Add when shapes allow), last 1x1, GAP, Gemm."""
    m = M((1, 3, res, res), seed=seed)
    x = m.relu6(m.bn(m.conv(m.input_name, 3, 16, 3, stride=2, bias=False, name="stem"), 16))
    c = 16
    for i, (t, cout, s) in enumerate([(1, 8, 1), (6, 12, 2), (6, 12, 1), (6, 16, 2), (6, 16, 1)]):
        e = c * t
        y = x
        if t != 1:
            y = m.relu6(m.bn(m.conv(y, c, e, 1, bias=False, name=f"b{i}_expand"), e))
        y = m.relu6(m.bn(m.conv(y, e, e, 3, stride=s, group=e, bias=False, name=f"b{i}_dw"), e))
        y = m.bn(m.conv(y, e, cout, 1, bias=False, name=f"b{i}_project"), cout)
        x = m.node("Add", [x, y], name=f"b{i}_add") if s == 1 and c == cout else y
        c = cout
    x = m.relu6(m.bn(m.conv(x, c, 64, 1, bias=False, name="last"), 64))
    x = m.node("Flatten", [m.node("GlobalAveragePool", [x])], axis=1)
    x = m.node("Gemm", [x, m.w((classes, 64)), m.w((classes,), 0.1)], name="classifier",
               transB=1)
    return m.model(m.node("Softmax", [x], axis=-1))


def mcunet_style(res=32, classes=10, seed=1) -> onnx.ModelProto:
    """Mixed depthwise kernels 3/5/7, the HardSwish forms, squeeze-excite Mul,
    per-axis strides, AveragePool, a shape subgraph feeding Reshape, MatMul + Add."""
    m = M((1, 3, res, res), seed=seed)
    x = m.hswish(m.bn(m.conv(m.input_name, 3, 8, 3, stride=2, bias=False, name="stem"), 8),
                 "div_after_mul")
    c = 8
    blocks = [(3, 2, 16, 1, "op", "xs"), (5, 3, 16, 2, "hardsigmoid", "sx"),
              (7, 3, 24, 1, "div_first", "xs"), (5, 4, 24, 1, "mul_sixth_after_mul", "sx"),
              (3, 4, 24, (2, 1), "mul_sixth_first", "xs")]
    for i, (k, t, cout, s, hs, order) in enumerate(blocks):
        e = c * t
        y = m.hswish(m.bn(m.conv(x, c, e, 1, bias=False, name=f"b{i}_expand"), e), hs)
        y = m.hswish(m.bn(m.conv(y, e, e, k, stride=s, group=e, bias=False,
                                 name=f"b{i}_dw{k}x{k}"), e), hs)
        # squeeze-excite
        sq = m.node("GlobalAveragePool", [y])
        sq = m.node("Relu", [m.conv(sq, e, max(e // 4, 4), 1, name=f"b{i}_se1")])
        sq = m.node("HardSigmoid", [m.conv(sq, max(e // 4, 4), e, 1, name=f"b{i}_se2")],
                    alpha=1 / 6, beta=0.5)
        y = m.node("Mul", [y, sq] if order == "xs" else [sq, y], name=f"b{i}_se_mul")
        y = m.bn(m.conv(y, e, cout, 1, bias=False, name=f"b{i}_project"), cout)
        x = m.node("Add", [y, x], name=f"b{i}_add") if s == 1 and c == cout else y
        c = cout
    x = m.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    # x.view(x.size(0), -1), as a tracing exporter writes it
    shp = m.node("Shape", [x])
    n = m.node("Unsqueeze", [m.node("Gather", [shp, m.init(0, dtype=np.int64)], axis=0),
                             m.init([0], dtype=np.int64)])
    x = m.node("Reshape", [x, m.node("Concat", [n, m.init([-1], dtype=np.int64)], axis=0)])
    feat = c * (res // 16) * (res // 8)
    x = m.node("MatMul", [x, m.w((feat, classes))], name="fc")
    x = m.node("Add", [x, m.w((classes,), 0.1)], name="fc_bias")
    return m.model(x, out_name="logits")
