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


def _same_selection(ffi, lib, eng, rng, per_layer):
    """The generated model initialised, checked against the engine's, and the
    same random selection (`per_layer` channels of each layer) on both."""
    model = lib.mdy_generated_model_ptr()
    ctx = ffi.new("mdy_ctx *")
    assert lib.mdy_init(ctx, model, lib.mdy_generated_arena_ptr()) == 0
    assert model.arena_size == eng.plan.arena_size
    assert model.hash == eng.model.hash
    layers = eng.program.layers
    sel = sorted({(li, int(c)) for li in range(len(layers))
                  for c in rng.choice(layers[li].channels, per_layer, replace=False)})
    eng.set_selection(sel)
    csel = ffi.new("mdy_channel[]", len(sel))
    for k, (a, b) in enumerate(sel):
        csel[k].layer, csel[k].channel = a, b
    assert lib.mdy_set_selection(ctx, csel, len(sel)) == 0
    return model, ctx, sel


def test_generated_training_matches_host_engine(setup):
    g, eng, out = setup
    ffi, lib = load_generated(out)
    rng = np.random.default_rng(5)
    model, ctx, sel = _same_selection(ffi, lib, eng, rng, 2)
    layers = eng.program.layers

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


@pytest.fixture(scope="module")
def setup_int8(tmp_path_factory):
    """A real int8 model (mcunet-5fps, QDQ) with a new 10-class head (fp32) and
    its last three layers trainable (two int8, the head)."""
    from medyate.ir.head import replace_head
    g = replace_head(load_onnx(str(FIXTURES.parents[1] / "models" / "mcunet-5fps.onnx")), 10)
    names = [n.name for n in g.trainable_nodes()][-3:]
    eng = HostEngine(g, trainable=names, budget_elements=20000, train_bias=True,
                     precision="int8")
    out = tmp_path_factory.mktemp("gen8")
    generate(eng.program, out)
    return g, eng, out


def test_generated_int8_training_matches_host_engine(setup_int8):
    """Same losses, statistics and trained int8 codes (the stochastic rounding
    draws from the same model-seeded generator) as the cffi-filled engine."""
    g, eng, out = setup_int8
    ffi, lib = load_generated(out)
    rng = np.random.default_rng(3)
    model, ctx, sel = _same_selection(ffi, lib, eng, rng, 3)
    layers = eng.program.layers
    x = rng.uniform(-1, 1, (4,) + g.shapes[g.input][1:]).astype(np.float32)
    y = rng.integers(0, 10, 4)
    res = eng.train_epoch(x, y, batch=2, lr=0.5)
    xs = eng._nhwc(x)                       # int8 codes, as the runtime quantizes
    assert xs.dtype == np.int8
    for i in range(4):
        assert lib.mdy_train_sample(ctx, ffi.from_buffer("int8_t[]", xs[i]), int(y[i]), 2) == 0
        if i % 2 == 1:
            lib.mdy_sgd_step(ctx, 0.5)
    assert ctx.loss_sum / ctx.seen == pytest.approx(res.loss, rel=1e-6)
    stats = np.frombuffer(ffi.buffer(lib.mdy_channel_stats(ctx), 4 * len(sel)), dtype=np.float32)
    np.testing.assert_allclose(stats, res.channel_stats, rtol=1e-6)
    for li, l in enumerate(layers):
        op = eng.program.ops[l.op]
        if op.s8 is None:
            continue
        w = np.frombuffer(ffi.buffer(model.layers[li].weight, op.s8.weight_q.size), dtype=np.int8)
        np.testing.assert_array_equal(w, op.s8.weight_q.ravel())


def test_generated_int8_sources_compile_for_the_m7(setup_int8, tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    _, _, out = setup_int8
    r = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard",
                        f"-I{FIRMWARE / 'include'}", f"-I{out}", "-c", str(out / "model.c"),
                        "-o", str(tmp_path / "model.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
