"""Cost model, profiler figures checked by hand, and the `medyate profile` command."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ir_models import M, mobilenetv2_style
from medyate.ir import cost
from medyate.ir.onnx_import import load_onnx
from medyate.ir.reference import evaluate_all
from medyate.profile import peak_forward_bytes, profile_graph, training_memory

MEDYATE = os.path.join(os.path.dirname(sys.executable), "medyate")


def hand_model():
    """x 1x3x8x8 -> conv 3->4 k3 p1 -> Relu -> depthwise x2 k3 s2 p1 (8 ch, 4x4)
    -> GAP -> Flatten -> Gemm 8->5."""
    m = M((1, 3, 8, 8))
    y = m.conv("x", 3, 4, 3, name="conv1")
    y = m.node("Relu", [y], name="relu")
    y = m.conv(y, 4, 8, 3, stride=2, group=4, name="dw")
    y = m.node("Flatten", [m.node("GlobalAveragePool", [y], name="gap")], name="flat")
    y = m.node("Gemm", [y, m.w((5, 8)), m.w((5,))], name="fc", transB=1)
    return m.model(y)


@pytest.fixture
def hand(save):
    path = save(hand_model(), "hand.onnx")
    return path, load_onnx(path)


def test_cost_model_by_hand(hand):
    _, g = hand
    conv1, dw, fc = g.node("conv1"), g.node("dw"), g.node("fc")
    assert cost.channel_cost(g, conv1) == (4 * 3 * 3, 8 * 8)
    assert cost.channel_cost(g, dw) == (2 * 3 * 3, 8 * 8)        # multiplier 2
    assert cost.channel_cost(g, fc) == (5, 1)
    assert cost.channel_cost_elems(g, conv1) == 36 + 64
    assert cost.input_channels(g, conv1) == 3 and cost.input_channels(g, dw) == 4
    assert cost.input_channels(g, fc) == 8
    assert cost.node_macs(g, conv1) == 4 * 3 * 9 * 8 * 8 == 6912
    assert cost.node_macs(g, dw) == 8 * 1 * 9 * 4 * 4
    assert cost.node_macs(g, fc) == 40
    assert cost.node_macs(g, g.node("relu")) == 0
    assert cost.param_count(conv1) == 112 and cost.param_count(dw) == 80
    assert cost.param_count(fc) == 45 and cost.param_count(g.node("relu")) == 0
    assert cost.wgrad_macs_per_channel(g, conv1) == 4 * 9 * 8 * 8
    assert cost.wgrad_macs_per_channel(g, dw) == 2 * 9 * 4 * 4
    assert cost.wgrad_macs_per_channel(g, fc) == 5
    with pytest.raises(ValueError):
        cost.channel_cost(g, g.node("relu"))


def test_cost_matches_real_gradient_slice_sizes(hand):
    """The slice of one input channel is exactly W[:, c] (dense) / W[c*m:(c+1)*m] (dw)."""
    _, g = hand
    vals = evaluate_all(g, np.zeros((1, 3, 8, 8), np.float32))
    for n in g.trainable_nodes():
        s, mp = cost.channel_cost(g, n)
        w = n.params["weight"]
        if n.is_depthwise:
            mult = w.shape[0] // cost.input_channels(g, n)
            assert w[:mult].size == s
        else:
            assert w[:, 0].size == s
        x = vals[n.inputs[0]]
        assert (x[0, 0].size if x.ndim == 4 else 1) == mp


def test_peak_and_training_memory_by_hand(hand):
    _, g = hand
    # live tensors per step (bytes): conv1 768+1024, relu 1024+1024, dw 1024+512, ...
    assert peak_forward_bytes(g) == (2048, "relu")
    tm = training_memory(g)
    assert tm["weight_bytes"] == (112 + 80 + 45) * 4
    assert tm["weight_grad_bytes"] == (112 + 80 + 45) * 4
    # inputs of conv1 (768), dw (1024), fc (32) + the Relu's 1-bit mask (256 / 8)
    assert tm["saved_activation_bytes"] == 768 + 1024 + 32 + 32
    assert tm["peak_gradient_bytes"] == 2048        # dL/d relu out + dL/d conv1 out
    assert tm["training_bytes"] == 948 * 2 + 1856 + 2048


def test_maxpool_state_counted_as_planner_and_c_keep_it(save):
    """A 3x3 max pool with overlapping windows saves one 4-bit window index
    per output (as the planner and the C kernel), not one bit per input."""
    from medyate.planner.arena import plan_arena
    from medyate.planner.program import MAXPOOL, lower
    m = M((1, 3, 8, 8))
    y = m.conv("x", 3, 4, 3, name="conv1")
    y = m.node("MaxPool", [y], name="pool", kernel_shape=[3, 3], strides=[1, 1],
               pads=[1, 1, 1, 1])
    y = m.node("Gemm", [m.node("Flatten", [y], name="flat"), m.w((5, 256)), m.w((5,))],
               name="fc", transB=1)
    g = load_onnx(save(m.model(y), "pool.onnx"))
    state = 4 * 8 * 8 * 4 // 8                     # 256 outputs x ceil(log2 9) bits
    # inputs of conv1 (768) and fc (1024) + the pool's window indices
    assert training_memory(g)["saved_activation_bytes"] == 768 + 1024 + state
    prog = lower(g.copy(), ["conv1", "fc"], True)
    plan_arena(prog, sum(l.cost * l.channels for l in prog.layers))
    assert [op.saved_bytes for op in prog.ops if op.kind == MAXPOOL] == [state]


def test_profile_graph_report(hand):
    _, g = hand
    rep = profile_graph(g)
    t = rep["totals"]
    assert t["params"] == 237 and t["param_bytes"] == 948
    assert t["macs"] == 6912 + 1152 + 40
    assert t["peak_forward_activation_bytes"] == 2048
    assert t["full_finetune"]["training_bytes"] == 5800
    L = {l["name"]: l for l in rep["layers"]}
    assert L["dw"]["depthwise"] and L["dw"]["output_shape"] == [1, 8, 4, 4]
    assert L["dw"]["trainable"]["channel_cost_bytes"] == (18 + 64) * 4
    assert L["conv1"]["activation_bytes"] == 4 * 8 * 8 * 4
    assert "trainable" not in L["relu"]
    json.dumps(rep)   # serialisable


def test_profile_mobilenet_totals(save):
    g = load_onnx(save(mobilenetv2_style()))
    rep = profile_graph(g)
    assert rep["totals"]["params"] == sum(n.params["weight"].size + n.params["bias"].size
                                          for n in g.trainable_nodes())
    tm = rep["totals"]["full_finetune"]
    assert tm["training_bytes"] > rep["totals"]["peak_forward_activation_bytes"]
    assert tm["training_bytes"] == sum(v for k, v in tm.items() if k != "training_bytes")


# ----------------------------------------------------------------- CLI

def run_cli(*args):
    return subprocess.run([MEDYATE, "profile", *args], capture_output=True, text=True,
                          timeout=60)


def test_cli_json(hand):
    path, _ = hand
    r = run_cli(path, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["totals"]["params"] == 237
    assert rep["totals"]["macs"] == 8104
    conv1 = rep["layers"][0]
    assert conv1["name"] == "conv1" and conv1["macs"] == 6912
    assert conv1["input_shapes"] == [[1, 3, 8, 8]] and conv1["output_shape"] == [1, 4, 8, 8]
    assert conv1["trainable"] == {"input_channels": 3, "slice_elems": 36, "map_elems": 64,
                                  "channel_cost_elems": 100, "channel_cost_bytes": 400,
                                  "wgrad_macs_per_channel": 2304}


def test_cli_table(hand):
    path, _ = hand
    r = run_cli(path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    line = next(l for l in out.splitlines() if " conv1 " in l)
    assert "6,912" in line and "1x3x8x8" in line and "1x4x8x8" in line and "400" in line
    assert "Conv(dw) 3x3/2,2" in out
    assert "parameters             237 (948 bytes" in out
    assert "peak forward memory    2,048 bytes" in out
    assert "full fine-tuning memory 5,800 bytes" in out


def test_cli_input_shape_and_errors(save, tmp_path, fixtures_dir):
    m = M((1, 3, 16, 16))
    m.input.type.tensor_type.shape.dim[2].dim_param = "H"
    y = m.conv("x", 3, 2, 3, name="c")
    path = save(m.model(y), "dyn.onnx")
    r = run_cli(path)
    assert r.returncode == 1
    assert "input 'x' has dynamic dimension(s) [2]" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(path, "--input-shape", "1,3,10,16", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["layers"][0]["macs"] == 2 * 3 * 9 * 10 * 16
    r = run_cli(path, "--input-shape", "1,3,a")
    assert r.returncode == 1 and "expected integers" in r.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_text("hello")
    r = run_cli(str(bad))
    assert r.returncode == 1 and "ONNX model" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(f"{fixtures_dir}/torch_tiny_const.onnx")
    assert r.returncode == 0 and "full fine-tuning memory" in r.stdout


def test_cli_help():
    r = run_cli("--help")
    assert r.returncode == 0 and "--input-shape" in r.stdout and "--json" in r.stdout
