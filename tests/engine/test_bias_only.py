"""Bias-only layers (`lower(..., bias_only=...)`): a trainable layer whose
weights stay frozen and whose bias alone trains. Its weights stay in flash
(const in the generated C, not counted in RAM), it has no selectable channel,
and training it is the same computation as training it as an ordinary layer
with none of its channels selected: same losses, same biases, bit for bit;
the weights never move. On the bundled mcunet-tiny, fp32 and quantized."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from medyate.codegen import generate
from medyate.data import bundled_model, load_task
from medyate.engine.build import FIRMWARE
from medyate.engine.host import HostEngine
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.planner import footprint
from medyate.planner.arena import max_selected, plan_arena
from medyate.planner.model_table import model_table
from medyate.planner.program import lower

# a depthwise conv, a pointwise conv (both bias-only), then a pointwise conv
# and the classifier whose channels train: backward passes through the two
# bias-only layers (the deeper one needs the input gradient of the other)
DW = "/features/features.5/body/body.3/Conv"
PW = "/features/features.7/body/body.0/Conv"
LAST = "/features/features.7/body/body.6/Conv"
HEAD = "/classifier/Gemm"
LAYERS = [DW, PW, LAST, HEAD]
BIAS_ONLY = [DW, PW]


@pytest.fixture(scope="module")
def task():
    return load_task("fmnist-5to9", n_train=48, n_test=16)


@pytest.fixture(scope="module", params=["fp32", "int8"])
def model(request, task, tmp_path_factory):
    """(precision, graph): mcunet-tiny as bundled, or quantized by onnxruntime."""
    path = bundled_model("mcunet-tiny")
    if request.param == "int8":
        from medyate.ir.quantize import quantize_model
        dst = tmp_path_factory.mktemp("int8") / "mcunet-tiny-int8.onnx"
        quantize_model(path, dst, task.x_train)
        path = dst
    return request.param, load_onnx(str(path))


def _program(graph, precision, budget, bias_only=BIAS_ONLY, train_bias=True):
    prog = lower(graph.copy(), LAYERS, train_bias, precision, bias_only)
    plan_arena(prog, budget)
    return prog


def _param_bytes(graph, name, precision):
    """Bytes of a layer's weight and bias as the device stores them, from the IR."""
    node = graph.node(name)
    w, b = node.params["weight"].size, node.params["bias"].size
    if precision == "int8" and node.quant is not None:
        return w, 4 * b                          # int8 codes, int32 bias
    return 4 * w, 4 * b


def test_lowering_marks_the_layers(model):
    precision, graph = model
    prog = _program(graph, precision, 2000, train_bias=False)
    by = {l.name: l for l in prog.layers}
    for n in BIAS_ONLY:
        # bias-only implies the bias trains, whatever train_bias says
        assert by[n].bias_only and by[n].train_bias and by[n].channels == 0
    for n in (LAST, HEAD):
        assert not by[n].bias_only and not by[n].train_bias
        assert by[n].channels == graph.node(n).params["weight"].shape[1]
    with pytest.raises(MedyateError, match="bias-only layer.*not among the trainable.*nope"):
        lower(graph.copy(), LAYERS, True, precision, ["nope"])


def test_footprint_counts_only_the_bias_in_ram(model):
    precision, graph = model
    budget = 2000
    prog = _program(graph, precision, budget)
    ref = _program(graph, precision, budget, bias_only=())
    got = footprint.layer_weight_bytes(prog)
    for n in LAYERS:
        w, b = _param_bytes(graph, n, precision)
        assert got[n] == (b if n in BIAS_ONLY else w + b), n
    saved = sum(_param_bytes(graph, n, precision)[0] for n in BIAS_ONLY)
    mem, mem_ref = footprint.memory_breakdown(prog), footprint.memory_breakdown(ref)
    assert mem_ref["trainable_weights"] - mem["trainable_weights"] == saved > 0
    fp = footprint.ram_footprint(prog, "nucleo-f746")
    assert fp["trainable_weights"] == sum(got.values())
    assert sum(footprint.memory_plan(prog, "nucleo-f746")["layers"].values()) == \
        fp["trainable_weights"]
    # the model table agrees: RAM arrays are exactly the counted bytes
    table = model_table(prog)
    assert table.trainable_bytes == mem["trainable_weights"]
    assert sum(a.data.nbytes for a in table.arrays if not a.const) == mem["trainable_weights"]


def test_no_pool_room_for_bias_only_channels(model):
    """max_selected and the smallest budget count only the layers with channels;
    a plan of bias-only layers alone needs no channel pool."""
    precision, graph = model
    prog = _program(graph, precision, 0)
    costs = [l.cost for l in prog.layers if not l.bias_only for _ in range(l.channels)]
    assert max_selected(prog, sum(costs)) == len(costs)
    assert max_selected(prog, 10 ** 7) == len(costs)
    only = lower(graph.copy(), BIAS_ONLY, False, precision, BIAS_ONLY)
    plan = plan_arena(only, 0)
    assert plan.max_selected == 0 and plan.pool_size == 0
    assert {b.kind for b in plan.buffers if b.name.startswith("bias_grad")} == {"bias_grad"}
    assert not [b for b in plan.buffers if b.kind == "saved" and b.name in
                (f"saved:{DW}", f"saved:{PW}")]


def test_generated_c_keeps_the_weights_const(model, tmp_path):
    precision, graph = model
    prog = _program(graph, precision, 2000)
    generate(prog, tmp_path)
    text = (tmp_path / "model.c").read_text()
    wtype, btype = ("int8_t", "int32_t") if precision == "int8" else ("float", "float")
    for l in prog.layers:
        if l.name == HEAD and precision == "int8" and prog.ops[l.op].s8 is None:
            wtype_, btype_ = "float", "float"     # a float head
        else:
            wtype_, btype_ = wtype, btype
        w = f"static {'const ' if l.bias_only else ''}{wtype_} mdy_weight_{l.op}["
        b = f"static {btype_} mdy_bias_{l.op}["
        assert w in text, w
        assert b in text, b
    assert prog.hash32(2000) != _program(graph, precision, 2000, bias_only=()).hash32(2000)
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    r = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard",
                        f"-I{FIRMWARE / 'include'}", f"-I{tmp_path}", "-c",
                        str(tmp_path / "model.c"), "-o", str(tmp_path / "model.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _train(graph, precision, task, bias_only, epochs=2):
    """Two epochs with the same selection (channels of LAST and HEAD only)."""
    budget = 3000
    eng = HostEngine(graph, LAYERS, budget, True, precision=precision, bias_only=bias_only)
    rng = np.random.default_rng(7)
    last, head = eng.program.layers[2], eng.program.layers[3]
    sel = sorted([(2, int(c)) for c in rng.choice(last.channels, 6, replace=False)] +
                 [(3, int(c)) for c in rng.choice(head.channels, 12, replace=False)])
    eng.set_selection(sel)
    before = eng.weights()
    out = []
    # The int8 SGD rounds stochastically from a generator seeded with the model
    # hash, which bias_only changes (Program.hash32): both runs start it from
    # the same state, so they draw the same numbers.
    eng.ctx.rng = 0x2545F491
    for e in range(epochs):
        order = np.random.default_rng(e).permutation(len(task.x_train))
        r = eng.train_epoch(task.x_train, task.y_train, batch=8, lr=0.05, order=order)
        out.append((r.loss, r.accuracy, r.steps, r.channel_stats.tobytes(),
                    eng.evaluate(task.x_test, task.y_test)))
    return eng, before, out


def test_training_equals_the_layer_with_no_channel_selected(model, task):
    precision, graph = model
    eng, before, hist = _train(graph, precision, task, BIAS_ONLY)
    ref, before_ref, hist_ref = _train(graph, precision, task, ())
    assert hist == hist_ref                      # losses, stats, evaluation: bit for bit
    after, after_ref = eng.weights(), ref.weights()
    for n in LAYERS:
        np.testing.assert_array_equal(after[n][0], after_ref[n][0])
        np.testing.assert_array_equal(after[n][1], after_ref[n][1])
    for n in BIAS_ONLY:
        np.testing.assert_array_equal(after[n][0], before[n][0])     # frozen, bit for bit
        assert not np.array_equal(after[n][1], before[n][1]), f"{n}: the bias did not train"
    op = eng.program.ops[eng.program.layers[0].op]
    stored = op.s8.weight_q if op.s8 is not None else op.weight
    ir = graph.node(DW)
    np.testing.assert_array_equal(
        stored.reshape(-1),
        (ir.quant.weight_q if op.s8 is not None else
         np.asarray(ir.params["weight"], np.float32)).reshape(-1))
    # the trained channels moved (the test trains something)
    assert not np.array_equal(after[LAST][0], before[LAST][0])


def test_a_selection_naming_a_bias_only_channel_is_refused(model):
    precision, graph = model
    eng = HostEngine(graph, LAYERS, 3000, True, precision=precision, bias_only=BIAS_ONLY)
    eng.set_selection([(2, 0)])
    with pytest.raises(MedyateError, match=f"channel 3 of layer {PW}.*only its bias"):
        eng.set_selection([(1, 3), (2, 0)])
    assert eng.selection == [(2, 0)]
    # the runtime itself refuses it too (the layer has no channel), before any state changes
    sel = eng.ffi.new("mdy_channel[]", 1)
    sel[0].layer, sel[0].channel = 0, 0
    assert eng.lib.mdy_set_selection(eng.ctx, sel, 1) == -2       # MDY_ERR_RANGE
    assert eng.ctx.n_selected == 1
    # loading other weights into a frozen layer is refused; its own round-trip
    w = eng.weights()
    eng.load_weights(w)
    w[DW] = (w[DW][0] + 1.0, w[DW][1])
    with pytest.raises(MedyateError, match=f"layer {DW} trains only its bias"):
        eng.load_weights(w)
