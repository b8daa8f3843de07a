"""Generated C (codegen) compiled for the host trains exactly like the
cffi-filled engine: same program, same kernels, same results."""
import subprocess
import shutil

import numpy as np
import pytest

from medyate.codegen import generate
from medyate.engine.build import FIRMWARE, load_generated
from medyate.engine.host import HostEngine
from medyate.ir.onnx_import import load_onnx

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    g = load_onnx(str(FIXTURES / "torch_tiny.onnx"))
    names = [n.name for n in g.trainable_nodes()][-5:]
    eng = HostEngine(g, trainable=names, budget_elements=6000, train_bias=True)
    out = tmp_path_factory.mktemp("gen")
    generate(eng.program, out)
    return g, eng, out


def test_generated_training_matches_host_engine(setup):
    g, eng, out = setup
    ffi, lib = load_generated(out)
    model = lib.mdy_generated_model_ptr()
    arena = lib.mdy_generated_arena_ptr()
    ctx = ffi.new("mdy_ctx *")
    assert lib.mdy_init(ctx, model, arena) == 0
    assert model.arena_size == eng.plan.arena_size
    assert model.hash == eng.model.hash

    rng = np.random.default_rng(5)
    layers = eng.program.layers
    sel = sorted({(li, int(c)) for li in range(len(layers))
                  for c in rng.choice(layers[li].channels, 2, replace=False)})
    eng.set_selection(sel)
    csel = ffi.new("mdy_channel[]", len(sel))
    for k, (a, b) in enumerate(sel):
        csel[k].layer, csel[k].channel = a, b
    assert lib.mdy_set_selection(ctx, csel, len(sel)) == 0

    x = rng.standard_normal((8,) + g.shapes[g.input][1:]).astype(np.float32)
    y = rng.integers(0, 10, 8)
    res = eng.train_epoch(x, y, batch=4, lr=0.1)
    xs = eng._nhwc(x)
    for i in range(8):
        assert lib.mdy_train_sample(ctx, ffi.from_buffer("float[]", xs[i]), int(y[i]), 4) == 0
        if i % 4 == 3:
            lib.mdy_sgd_step(ctx, 0.1)
    assert ctx.loss_sum / ctx.seen == pytest.approx(res.loss, rel=1e-6)
    stats = np.frombuffer(ffi.buffer(lib.mdy_channel_stats(ctx), 4 * len(sel)), dtype=np.float32)
    np.testing.assert_allclose(stats, res.channel_stats, rtol=1e-6)
    for li, l in enumerate(layers):
        w = np.frombuffer(ffi.buffer(model.layers[li].weight, 4 * eng.program.ops[l.op].weight.size),
                          dtype=np.float32)
        np.testing.assert_array_equal(w, eng.program.ops[l.op].weight.ravel())


@pytest.mark.parametrize("cc,flags", [
    ("cc", []),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]),
])
def test_generated_sources_compile_warning_free(setup, cc, flags, tmp_path):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    _, _, out = setup
    r = subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", *flags,
                        f"-I{FIRMWARE / 'include'}", f"-I{out}", "-c", str(out / "model.c"),
                        "-o", str(tmp_path / "model.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_frozen_weights_const_trainable_in_ram(setup):
    _, eng, out = setup
    text = (out / "model.c").read_text()
    for i, op in enumerate(eng.program.ops):
        if op.weight is None:
            continue
        trainable = op.layer is not None
        decl = f"static {'' if trainable else 'const '}float mdy_weight_{i}["
        assert decl in text, decl
