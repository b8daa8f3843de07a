"""A model's kernel set (planner/kernel_set.py, runtime/mdy_kernel_set.h): a
device image links the large kernels its model calls and no others, and an op
whose kernel is not linked fails loudly instead of skipping its work.

That the kernels it keeps are all the model needs is what every generated
build's training test shows (test_generated_host.py on the host, the QEMU
sessions' equality with the host engine, fp32 and int8)."""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medyate.codegen import generate
from medyate.engine.build import FIRMWARE, load_generated
from medyate.engine.host import HostEngine
from medyate.ir.onnx_import import load_onnx
from medyate.planner import program as P
from medyate.planner.kernel_set import _KERNEL, _name, kernels_called

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HEADER = FIRMWARE / "src" / "runtime" / "mdy_kernel_set.h"
MDY_ERR_UNSUPPORTED = -5


def _header_bits():
    return set(re.findall(r"#define (MDY_K_\w+)\s+\(1ul << \d+\)", HEADER.read_text()))


def test_every_name_the_rule_can_print_is_a_header_bit():
    names = {_name(k, d, ph) for k in _KERNEL for d in (P.F32, P.S8)
             for ph in ("", "_IGRAD", "_WGRAD")}
    assert names == _header_bits()
    n = len(names)
    assert f"#define MDY_K_ALL                             ((1ul << {n}) - 1ul)" in HEADER.read_text()


@pytest.fixture(scope="module")
def fp32_engine():
    g = load_onnx(str(FIXTURES / "torch_tiny.onnx"))
    names = [n.name for n in g.trainable_nodes()][-5:]
    return g, HostEngine(g, trainable=names, budget_elements=6000, train_bias=True)


def test_fp32_program_names_its_forward_backward_and_trained_kernels(fp32_engine):
    _, eng = fp32_engine
    prog = eng.program
    got = kernels_called(prog)
    assert all(n.endswith(("F32", "F32_IGRAD", "F32_WGRAD")) for n in got), got
    deepest = prog.deepest_trainable_op
    for i, op in enumerate(prog.ops):
        if op.kind in _KERNEL:
            assert _name(op.kind, P.F32) in got
            if i > deepest and prog.tensors[op.inputs[0]].grad_offset is not None:
                assert _name(op.kind, P.F32, "_IGRAD") in got
    trained = {_name(prog.ops[l.op].kind, P.F32, "_WGRAD") for l in prog.layers}
    assert trained <= set(got)
    # every weight gradient it names is a trained layer's
    assert {n for n in got if n.endswith("_WGRAD")} == trained
    # below the deepest trained layer no input gradient runs: the depthwise
    # layers of this model all sit there
    assert _name(P.DEPTHWISE_CONV2D, P.F32) in got
    assert _name(P.DEPTHWISE_CONV2D, P.F32, "_IGRAD") not in got


def test_a_kernel_left_out_fails_the_step_with_unsupported(fp32_engine, tmp_path):
    """The generated model, built with one kernel it calls taken out of its set:
    the forward that needs it returns MDY_ERR_UNSUPPORTED, as does the training
    step; with the set as generated, both succeed."""
    g, eng = fp32_engine
    generate(eng.program, tmp_path)
    cfg = tmp_path / "model_config.h"
    text = cfg.read_text()
    assert "MDY_K_FULLY_CONNECTED_F32 | \\" in text
    cfg.write_text(text.replace("MDY_K_FULLY_CONNECTED_F32 | \\", "\\"))
    ffi, lib = load_generated(tmp_path)
    ctx = ffi.new("mdy_ctx *")
    assert lib.mdy_init(ctx, lib.mdy_generated_model_ptr(), lib.mdy_generated_arena_ptr()) == 0
    x = np.zeros(int(np.prod(g.shapes[g.input][1:])), np.float32)
    xb = ffi.from_buffer("float[]", x)
    assert lib.mdy_forward(ctx, xb, ffi.NULL) == MDY_ERR_UNSUPPORTED
    assert lib.mdy_train_sample(ctx, xb, 0, 1) == MDY_ERR_UNSUPPORTED


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs gcc-arm-none-eabi")
def test_int8_image_links_no_fp32_convolutions_it_does_not_call(tmp_path):
    """mcunet-tiny quantized: its convolutions run in int8, only the head in
    fp32. The QEMU image has the int8 kernels and not the fp32 depthwise ones,
    nor the weight gradient of a kind no trained layer has."""
    from medyate.data import bundled_model, load_task
    from medyate.ir.quantize import quantize_model
    from medyate.planner.plan import TrainPlan, file_sha256
    from medyate.session.firmware import build_device_firmware
    task = load_task("fmnist-5to9", n_train=16, n_test=8)
    path = tmp_path / "mcunet-tiny-int8.onnx"
    quantize_model(bundled_model("mcunet-tiny"), path, task.x_train)
    graph = load_onnx(str(path))
    names = [n.name for n in graph.trainable_nodes()][-3:]
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path), layers=names,
                     budget_elements=3000, precision="int8")
    program, build = build_device_firmware(graph, plan, "qemu-mps2-an500", tmp_path / "fw",
                                           log=lambda *_: None)
    got = set(kernels_called(program))
    syms = set(subprocess.run(["arm-none-eabi-nm", str(build.elf)], capture_output=True,
                              text=True, check=True).stdout.split())
    kinds = {program.ops[l.op].kind for l in program.layers}
    assert "mdy_conv2d_nhwc_s8" in syms and "mdy_depthwise_conv2d_nhwc_s8" in syms
    assert "mdy_depthwise_conv2d_nhwc_f32" not in syms
    assert "mdy_depthwise_conv2d_nhwc_f32_igrad" not in syms
    assert "mdy_depthwise_conv2d_nhwc_f32_wgrad" not in syms
    if P.DEPTHWISE_CONV2D not in kinds:
        assert "mdy_depthwise_conv2d_nhwc_s8_wgrad" not in syms
    # and the image's kernels are exactly the set, for each of the 18
    for bit in _header_bits():
        fn = "mdy_" + bit[len("MDY_K_"):].lower()
        assert (fn in syms) == (bit in got), bit
