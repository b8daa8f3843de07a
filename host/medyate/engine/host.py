"""The C engine on the host: a planned `Program` handed to the runtime through
cffi, exactly as codegen hands it to the firmware (same structs, same offsets,
same kernels). This is the host simulation the algorithm and the tests use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import MedyateError
from ..ir.graph import Graph
from ..planner.arena import plan_arena
from ..planner.compute import wgrad_macs_per_channel
from ..planner.int8 import dequantized_weights, quantize_weights
from ..planner.model_table import Ref, model_table, public, tensor_row
from ..planner.program import (DEPTHWISE_CONV2D, FULLY_CONNECTED, S8, LayerSpec, Program,
                               lower)
from .build import kernel_selection, load_engine

STATUS = {-1: "bad argument", -2: "layer or channel index out of range",
          -3: "selection not strictly increasing (duplicate or unsorted channels)",
          -4: "selection exceeds the channel budget", -5: "unsupported op", -6: "label out of range"}


def check(status: int, what: str) -> None:
    if status != 0:
        raise MedyateError(f"{what}: {STATUS.get(status, f'error {status}')}")


@dataclass
class EpochResult:
    loss: float
    accuracy: float
    steps: int
    channel_stats: np.ndarray     # per selected pair: summed squared slice-gradient norms
    nonfinite: int = 0            # samples with a NaN/inf loss + SGD steps with a NaN/inf gradient


class HostEngine:
    """One model with a training plan, running on the host build of the C engine."""

    def __init__(self, graph: Graph, trainable=(), budget_elements: int = 0,
                 train_bias: bool = False, program: Program | None = None,
                 board=None, kernels=None, precision: str = "fp32", bias_only=()):
        self.graph = graph
        self.program = program or lower(graph.copy(), list(trainable), train_bias, precision,
                                        list(bias_only))
        self.plan = plan_arena(self.program, budget_elements)
        # The kernels the simulated board (default: the host board, which selects
        # what the Cortex-M7 boards select) compiles, unless `kernels` names them.
        self.ffi, self.lib = load_engine(
            kernels=kernel_selection(board) if kernels is None else kernels)
        self._keep: list = []
        self._build_model()
        self.arena = np.zeros(self.plan.arena_size + 64, dtype=np.uint8)
        self.ctx = self.ffi.new("mdy_ctx *")
        check(self.lib.mdy_init(self.ctx, self.model, self._ptr(self.arena, "uint8_t *")), "init")
        self.selection: list[tuple[int, int]] = []

    # ------------------------------------------------------------ structs
    def _ptr(self, arr: np.ndarray, ctype: str = "float *"):
        self._keep.append(arr)
        return self.ffi.cast(ctype, self.ffi.from_buffer(arr))

    def _build_model(self) -> None:
        """mdy_model from the planner's model table (codegen prints the same table)."""
        ffi = self.ffi
        table = model_table(self.program)
        syms = {a.symbol: self._ptr(a.data, f"{a.ctype} *") for a in table.arrays}
        for st in table.structs:
            arr = ffi.new(f"{st.ctype}[]", len(st.items))
            for k, item in enumerate(st.items):
                self._fill(arr[k], item, syms)
            self._keep.append(arr)
            syms[st.symbol] = arr
        records = {}
        for name, ctype, rows in (("tensors", "mdy_tensor", table.tensors),
                                  ("ops", "mdy_op", table.ops),
                                  ("layers", "mdy_layer", table.layers)):
            arr = ffi.new(f"{ctype}[]", max(1, len(rows)))
            for k, row in enumerate(rows):
                self._fill(arr[k], public(row), syms)
            self._keep.append(arr)
            records[name] = arr
        m = ffi.new("mdy_model *")
        self._fill(m, table.model, syms)
        m.ops, m.tensors, m.layers = records["ops"], records["tensors"], records["layers"]
        self.model = m

    def _fill(self, c, fields: dict, syms: dict) -> None:
        for k, v in fields.items():
            if isinstance(v, Ref):
                setattr(c, k, syms[v])
            elif v is None:
                setattr(c, k, self.ffi.NULL)
            elif isinstance(v, dict):
                self._fill(getattr(c, k), v, syms)
            elif isinstance(v, list):
                arr = getattr(c, k)
                for j, e in enumerate(v):
                    arr[j] = e
            else:
                setattr(c, k, v)

    # ------------------------------------------------------------ public API
    @property
    def layers(self) -> list[LayerSpec]:
        return [layer_spec(self.program, i) for i in range(len(self.program.layers))]

    def set_selection(self, pairs) -> None:
        pairs = [(int(a), int(b)) for a, b in pairs]
        self.program.check_selection(pairs)
        sel = self.ffi.new("mdy_channel[]", max(1, len(pairs)))
        for k, (layer, ch) in enumerate(pairs):
            if not (0 <= layer < 0xFFFF and 0 <= ch < 0xFFFF):
                raise MedyateError(f"selection entry {k}: {(layer, ch)} out of range")
            sel[k].layer, sel[k].channel = layer, ch
        check(self.lib.mdy_set_selection(self.ctx, sel, len(pairs)), "set selection")
        self.selection = pairs

    def select_all(self) -> None:
        """Every channel of every trainable layer (needs a budget that holds them)."""
        self.set_selection([(i, c) for i, l in enumerate(self.program.layers)
                            for c in range(l.channels)])

    def _nhwc(self, x: np.ndarray) -> np.ndarray:
        """NCHW float samples as the engine takes them: NHWC rows, float32 or,
        for an int8 model, the input's int8 codes (input_codes)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)
        x = np.ascontiguousarray(x.reshape(x.shape[0], -1))
        if self.program.tensors[self.program.input].dtype != S8:
            return x
        return _input_codes(self.ffi, self.lib, self.model, x)

    def _sample_ptr(self, row: np.ndarray):
        return self.ffi.cast("void *", self.ffi.from_buffer(row))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for an NCHW batch."""
        xs = self._nhwc(x)
        out = np.zeros((len(xs), self.program.classes), dtype=np.float32)
        buf = self.ffi.new("float[]", self.program.classes)
        for i in range(len(xs)):
            check(self.lib.mdy_forward(self.ctx, self._sample_ptr(xs[i]), buf), "forward")
            out[i] = np.frombuffer(self.ffi.buffer(buf), dtype=np.float32)
        return out

    def train_epoch(self, x, y, batch: int, lr: float, order=None,
                    progress=None) -> EpochResult:
        """One epoch of the runtime's `mdy_train_epoch` over the samples in
        `order`: mini-batches of `batch` (a last, shorter one scaled by 1/its
        own size), SGD after each, exactly as on a device."""
        xs = self._nhwc(x)
        y = np.asarray(y, dtype=np.int64)
        seed = getattr(order, "seed", None)
        order = np.arange(len(xs)) if order is None else np.asarray(order, dtype=np.int64)
        ffi, lib, ctx = self.ffi, self.lib, self.ctx
        n, per = len(order), xs.shape[1]
        if batch < 1:
            raise MedyateError(f"batch must be >= 1, got {batch}")
        if n and not (0 <= order.min() and order.max() < len(xs)):
            raise MedyateError("order: sample index outside the data")
        base = ffi.cast("uint8_t *", ffi.from_buffer(xs))
        row = xs.strides[0]

        @ffi.callback("mdy_sample_fn")
        def sample(_user, i, label):
            k = int(order[i])
            label[0] = int(y[k])
            return ffi.cast("void *", base + k * row)

        done_fn = ffi.NULL
        if progress:
            @ffi.callback("mdy_progress_fn")
            def done_fn(_user, done):
                if done % batch == 0 or done == n:
                    progress(int(done), n)

        ep = ffi.new("mdy_epoch *", {"count": n, "batch": batch, "lr": lr})
        lib.mdy_reset_stats(ctx)
        if seed is not None:
            # a session's epoch (a seeded order, as RUN_EPOCH carries it):
            # the rounding's draws restart from it, as on a device
            lib.mdy_seed_rounding(ctx, int(seed) & 0xFFFFFFFF)
        if n:
            check(lib.mdy_train_epoch(ctx, ep, sample, done_fn, ffi.NULL), "train epoch")
        seen = max(1, ctx.seen)
        stats = np.frombuffer(ffi.buffer(lib.mdy_channel_stats(ctx), 4 * max(1, len(self.selection))),
                              dtype=np.float32)[:len(self.selection)].copy()
        return EpochResult(ctx.loss_sum / seen, ctx.correct / seen, ctx.steps, stats,
                           int(ctx.nonfinite))

    def evaluate(self, x, y) -> tuple[float, float]:
        """Mean loss and accuracy from the runtime's `mdy_eval_sample`, summed
        in the same order and precision as a device's EVALUATE."""
        xs = self._nhwc(x)
        y = np.asarray(y, dtype=np.int64)
        acc = self.ffi.new("mdy_eval_stats *")
        for i in range(len(xs)):
            check(self.lib.mdy_eval_sample(self.ctx, self._sample_ptr(xs[i]), int(y[i]), acc,
                                           self.ffi.NULL), f"evaluate sample {i}")
        n = max(1, acc.count)
        return acc.loss_sum / n, acc.correct / n

    # ------------------------------------------------------------ weights
    def weights(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Trainable layers' weights in the IR's (ONNX) layout, in real units
        (an int8 layer's codes times their scales)."""
        out = {}
        for l in self.program.layers:
            op = self.program.ops[l.op]
            if op.s8 is not None:
                w, b = dequantized_weights(op)
                out[l.name] = (to_onnx_layout(self.program, l.op, w), b)
            else:
                out[l.name] = (to_onnx_layout(self.program, l.op), op.bias.copy())
        return out

    def load_weights(self, weights: dict) -> None:
        """Put weights (as `weights` returns them) back. An int8 layer takes
        the nearest codes of its fixed scales (planner.int8.quantize_weights, the
        device's arithmetic): what `weights` gave comes back as the same codes.
        A bias-only layer's weights are frozen (flash on a device): only its
        bias is loaded, and other weights than its own are refused."""
        for l in self.program.layers:
            if l.name in weights:
                w, b = weights[l.name]
                op = self.program.ops[l.op]
                w = from_onnx_layout(self.program, l.op, np.asarray(w, dtype=np.float32))
                if l.bias_only:
                    check_frozen_weight(self.program, l, w)
                if op.s8 is not None:
                    quantize_weights(op, w, b)
                else:
                    op.weight[...] = w
                    op.bias[...] = np.asarray(b, dtype=np.float32)

    def trained_graph(self) -> Graph:
        """The IR with the trained weights put back (for ONNX export)."""
        return self.graph.with_weights(self.weights())

    def memory(self) -> dict[str, int]:
        from ..planner.footprint import memory_breakdown
        return memory_breakdown(self.program)


def frozen_weight(program: Program, layer) -> np.ndarray:
    """A bias-only layer's weight in the runtime's layout and real units (an
    int8 layer's codes times their scales): what the device holds in flash."""
    op = program.ops[layer.op]
    return dequantized_weights(op)[0] if op.s8 is not None else op.weight


def check_frozen_weight(program: Program, layer, w) -> None:
    """Refuse a weight (runtime layout) for a bias-only layer other than its own."""
    if not np.array_equal(np.asarray(w, np.float32).reshape(-1),
                          np.asarray(frozen_weight(program, layer), np.float32).reshape(-1)):
        raise MedyateError(f"layer {layer.name} trains only its bias: its weights are frozen "
                           "(in flash on a device) and cannot be loaded")


def _input_codes(ffi, lib, model, x: np.ndarray) -> np.ndarray:
    """Float samples quantized by the runtime's mdy_input_from_f32 on `model`
    (elementwise, so any layout: one call over the whole array)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    codes = np.zeros(x.shape, dtype=np.int8)
    if x.size >= 2 ** 31:
        raise MedyateError(f"{x.size} sample elements: more than one quantization call takes")
    lib.mdy_input_from_f32(model, ffi.cast("float *", ffi.from_buffer(x)), 0, x.size,
                           ffi.cast("int8_t *", ffi.from_buffer(codes)))
    return codes


def input_codes(program: Program, x) -> np.ndarray:
    """The int8 codes of an int8 program's input for float samples `x` (any
    shape, e.g. NCHW), from the runtime's own mdy_input_from_f32 on a model
    holding just that input tensor: the arithmetic a device quantizes floats
    with, so codes made here and sent to a device (dataset image, the _S8
    requests) are what it would have made itself."""
    t = program.tensors[program.input]
    if t.dtype != S8:
        raise MedyateError(f"the model input {t.name!r} is not int8: its samples stay float")
    ffi, lib = load_engine()
    tensor = ffi.new("mdy_tensor *")
    for k, v in public(tensor_row(t)).items():
        setattr(tensor, k, v)
    model = ffi.new("mdy_model *")
    model.tensors, model.n_tensors, model.input = tensor, 1, 0
    return _input_codes(ffi, lib, model, np.asarray(x, dtype=np.float32))


def evaluate_logits(logits, y) -> tuple[float, float]:
    """Mean loss and accuracy of a batch of logits taken exactly as the
    runtime's `mdy_eval_sample` takes them after its forward pass (the same C
    cross-entropy kernel and argmax, the loss summed in fp32 in sample order),
    so logits a device computed (FORWARD) evaluate to the bits its EVALUATE
    and the host simulation give."""
    ffi, lib = load_engine()
    z = np.ascontiguousarray(np.asarray(logits, dtype=np.float32).reshape(len(logits), -1))
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if len(z) != len(y):
        raise MedyateError(f"{len(z)} logit rows for {len(y)} labels")
    n = z.shape[1]
    loss_sum, correct = np.float32(0.0), 0
    for zi, yi in zip(z, y):
        if not 0 <= yi < n:
            raise MedyateError(f"label {int(yi)} out of range for {n} classes")
        p = ffi.cast("float *", ffi.from_buffer(zi))
        loss_sum = np.float32(loss_sum + np.float32(lib.mdy_softmax_xent_f32(n, p, int(yi), 0.0,
                                                                               ffi.NULL)))
        correct += int(lib.mdy_argmax_f32(n, p) == yi)
    count = max(1, len(y))
    return float(loss_sum) / count, correct / count


def layer_spec(program: Program, i: int) -> LayerSpec:
    """Layer i of a lowered program as the algorithm sees it."""
    l = program.layers[i]
    return LayerSpec(l.name, l.channels, l.slice_size, l.map_size, l.map_words, l.out_c,
                     wgrad_macs_per_channel(program, i))


def loss_and_accuracy(logits, y) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy of a batch of logits."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    m = z.max(axis=1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean()), float((z.argmax(axis=1) == y).mean())


def to_onnx_layout(program: Program, op_index: int, w: np.ndarray | None = None) -> np.ndarray:
    """A weight in the runtime's layout (the op's own, or `w`, flat or shaped)
    -> the IR's (ONNX) layout."""
    op = program.ops[op_index]
    p = op.params
    w = (op.weight if w is None else np.asarray(w, dtype=np.float32)).reshape(op.weight.shape)
    if op.kind == DEPTHWISE_CONV2D:
        return w.reshape(p["out_c"], 1, p["k_h"], p["k_w"]).copy()
    if op.kind == FULLY_CONNECTED:
        return _fc_unpermute(program, op_index, w.copy())
    return w.transpose(0, 3, 1, 2).copy()


def from_onnx_layout(program: Program, op_index: int, w: np.ndarray) -> np.ndarray:
    op = program.ops[op_index]
    if op.kind == DEPTHWISE_CONV2D:
        return w.reshape(op.weight.shape)
    if op.kind == FULLY_CONNECTED:
        return _fc_permute(program, op_index, w)
    return w.transpose(0, 2, 3, 1)


def _fc_spatial(program: Program, op_index: int):
    t = program.tensors[program.ops[op_index].inputs[0]]
    src = program.tensors[t.alias] if t.alias is not None else t
    return (src.c, src.h, src.w) if src.h * src.w > 1 else None


def _fc_permute(program, op_index, w):
    s = _fc_spatial(program, op_index)
    if s is None:
        return w
    c, h, wd = s
    return w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def _fc_unpermute(program, op_index, w):
    s = _fc_spatial(program, op_index)
    if s is None:
        return w
    c, h, wd = s
    return w.reshape(w.shape[0], h, wd, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
