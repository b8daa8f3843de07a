"""An int8 fine-tuned model exports as QDQ ONNX (ir/onnx_export.py, qdq=True):
onnxruntime on the exported file reproduces the int8 engine's outputs, each op
within 1 LSB per element of the engine's integer arithmetic on the same input
codes, the logits end to end within the bound the forward test holds for the
imported model (tests/engine/test_engine_int8.py); importing the file gives back
the engine's codes and the file's scales, and the int8 engine on it the same
outputs bit for bit. A new float head stays float after a DequantizeLinear."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from int8_program import program_values
from medyate.engine.host import HostEngine
from medyate.errors import MedyateError
from medyate.ir.head import find_head, replace_head
from medyate.ir.onnx_export import export_onnx
from medyate.ir.onnx_import import load_onnx
from medyate.planner.program import c_weight_layout

MODELS = Path(__file__).resolve().parents[2] / "models"
# tests/engine/test_engine_int8.py: the int8 engine against onnxruntime on the
# imported QDQ model, end to end (measured 3 LSB)
END_TO_END_LSB = 6.01


def _images(n, seed=0):
    """Smooth random images in the model's [-1, 1) input range."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3, 16, 16)).astype(np.float32)
    return np.repeat(np.repeat(x, 8, axis=2), 8, axis=3)


def _photos():
    """sklearn's two photos as TTE feeds mcunet-5fps (the README's top-5 table)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ir"))
    import tte_reference as R
    return np.stack([(R.input_code(im) / 127.5).astype(np.float32)
                     for _, im in R.sample_images()])


def _ort(path_or_model, fused: bool):
    """onnxruntime on a QDQ model: Q/DQ run as float ops (as the forward test
    runs the imported file), or fused into its integer kernels (its default)."""
    so = ort.SessionOptions()
    if not fused:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    m = path_or_model if isinstance(path_or_model, bytes) else str(path_or_model)
    return ort.InferenceSession(m, so, providers=["CPUExecutionProvider"])


def _finetune(graph, seed):
    """One short int8 epoch (8 samples) on the last three layers, bias too."""
    names = [n.name for n in graph.trainable_nodes()][-3:]
    eng = HostEngine(graph, names, 400_000, train_bias=True, precision="int8")
    eng.select_all()
    classes = eng.program.classes
    x, y = _images(8, seed=seed), np.random.default_rng(seed).integers(0, classes, 8)
    r = eng.train_epoch(x, y, batch=4, lr=0.05)
    assert r.steps == 2 and r.nonfinite == 0
    return eng, names


@pytest.fixture(scope="module")
def mcunet():
    return load_onnx(str(MODELS / "mcunet-5fps.onnx"))


@pytest.fixture(scope="module")
def trained(mcunet, tmp_path_factory):
    """mcunet-5fps with its own int8 head (int8 logits), fine-tuned and exported."""
    eng, names = _finetune(mcunet, seed=1)
    path = tmp_path_factory.mktemp("qdq") / "finetuned.onnx"
    export_onnx(eng.trained_graph(), str(path), qdq=True)
    return eng, names, path


def _layer(eng, name):
    return next(eng.program.ops[l.op] for l in eng.program.layers if l.name == name)


def test_training_moved_the_codes_the_file_holds(mcunet, trained):
    eng, names, path = trained
    moved = {n: int(np.sum(_layer(eng, n).s8.weight_q !=
                           c_weight_layout(mcunet, mcunet.node(n), mcunet.node(n).quant.weight_q)))
             for n in names}
    assert all(v > 0 for v in moved.values()), moved
    m = onnx.load(str(path))
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    inits = {t.name: t for t in m.graph.initializer}
    for n in names:
        assert inits[f"{n}.weight_q"].data_type == onnx.TensorProto.INT8
        assert inits[f"{n}.bias_q"].data_type == onnx.TensorProto.INT32
    # no float weights of a quantized layer in the file
    assert not any(t.data_type == onnx.TensorProto.FLOAT and t.name.endswith(".weight")
                   for t in m.graph.initializer)


def test_onnxruntime_reproduces_the_engine_on_the_exported_model(mcunet, trained):
    eng, _, path = trained
    x = np.concatenate([_photos(), _images(6, seed=7)])
    got = eng.forward(x)
    scale = mcunet.quant[mcunet.output].scale
    for fused in (False, True):
        ref = _ort(path, fused).run(None, {"input": x})[0].reshape(len(x), -1)
        lsb = np.abs(got - ref) / scale
        print(f"exported QDQ, onnxruntime ({'fused integer kernels' if fused else 'Q/DQ as float ops'})"
              f" vs int8 engine, logits: max {lsb.max():.0f} LSB, "
              f"{100 * np.mean(lsb > 0.5):.1f}% of {lsb.size} differ")
        assert lsb.max() <= END_TO_END_LSB
        # the same class wherever the engine's top-1 leads by more than the
        # differences can close (the photos' leads are 1-3 LSB: either way)
        top2 = np.sort(got, axis=1)[:, -2:]
        sure = (top2[:, 1] - top2[:, 0]) / scale > 2 * lsb.max()
        assert sure.sum() >= 4
        assert np.array_equal(got[sure].argmax(1), ref[sure].argmax(1))
    # the training is in the file: it computes other logits than the imported one
    orig = _ort(MODELS / "mcunet-5fps.onnx", False).run(None, {"input": x})[0]
    assert np.abs(orig.reshape(len(x), -1) - ref).max() > 2 * scale


def test_every_op_within_one_lsb_of_onnxruntime_on_its_inputs(trained):
    """Each int8 op of the engine (its integer reference, bit-exact with it) on the
    codes onnxruntime computed for its inputs, against onnxruntime's codes of its
    output: the per-element agreement before 1-LSB differences propagate."""
    eng, _, path = trained
    m = onnx.load(str(path))
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear":
            m.graph.output.append(onnx.ValueInfoProto(name=n.output[0]))
    s = _ort(m.SerializeToString(), fused=False)
    x = _images(3, seed=9)
    ortv = dict(zip([o.name for o in s.get_outputs()], s.run(None, {"input": x})))
    prog, codes = eng.program, eng._nhwc(x)
    worst, differ, total, tensors = 0, 0, 0, 0
    for i in range(len(x)):
        given = {}
        for t in prog.tensors:
            a = ortv.get(f"{t.name}.q")
            if a is not None:
                a = a[i]
                given[t.name] = (a.transpose(1, 2, 0) if a.ndim == 3 else a).reshape(t.h, t.w, t.c)
        _, computed = program_values(prog, codes[i], given)
        for tid, t in enumerate(prog.tensors):
            if t.name in given and tid != prog.input:
                d = np.abs(computed[tid].astype(np.int64) - given[t.name].astype(np.int64))
                worst, differ, total = max(worst, int(d.max())), differ + int(np.sum(d > 0)), total + d.size
                tensors += i == 0
    print(f"exported QDQ, each op on onnxruntime's input codes: max {worst} LSB, "
          f"{100 * differ / total:.2f}% of {total} int8 elements ({tensors} tensors x {len(x)}) differ")
    assert tensors > 50 and worst <= 1


def test_import_gives_back_the_engines_codes_and_outputs(mcunet, trained):
    eng, names, path = trained
    g2 = load_onnx(str(path))
    def ops(g):      # the export writes a Flatten as the Reshape it is
        return [(n.name, "Reshape" if n.op == "Flatten" else n.op) for n in g.nodes]
    assert ops(g2) == ops(mcunet)
    assert g2.quant == mcunet.quant
    for n in g2.trainable_nodes():
        before = mcunet.node(n.name)
        np.testing.assert_array_equal(n.quant.weight_scale, before.quant.weight_scale)
        if n.name in names:
            s8 = _layer(eng, n.name).s8
            np.testing.assert_array_equal(c_weight_layout(g2, n, n.quant.weight_q), s8.weight_q)
            np.testing.assert_array_equal(n.quant.bias_q, s8.bias_q)
        else:
            np.testing.assert_array_equal(n.quant.weight_q, before.quant.weight_q)
            np.testing.assert_array_equal(n.quant.bias_q, before.quant.bias_q)
    x = _images(2, seed=4)
    np.testing.assert_array_equal(HostEngine(g2, precision="int8").forward(x), eng.forward(x))


def test_a_new_float_head_stays_float_after_a_dequantize(mcunet, tmp_path):
    g10 = replace_head(mcunet, 10, seed=0)
    eng, names = _finetune(g10, seed=2)
    head, _ = find_head(g10)
    assert head.name in names
    path = tmp_path / "finetuned.onnx"
    export_onnx(eng.trained_graph(), str(path), qdq=True)
    m = onnx.load(str(path))
    node = next(n for n in m.graph.node if n.name == head.name)
    made = {o: n for n in m.graph.node for o in n.output}
    assert made[node.input[0]].op_type == "DequantizeLinear"
    inits = {t.name: t for t in m.graph.initializer}
    assert inits[node.input[1]].data_type == onnx.TensorProto.FLOAT      # not a DQ's output
    x = _images(4, seed=6)
    got = eng.forward(x)
    # the head's input codes in onnxruntime and in the engine (its integer walk)
    xin = head.inputs[0]
    m.graph.output.append(onnx.ValueInfoProto(name=f"{xin}.q"))
    s = _ort(m.SerializeToString(), fused=False)
    ref, codes_ort = s.run(None, {"input": x})
    prog = eng.program
    tid = next(i for i, t in enumerate(prog.tensors) if t.name == xin)
    codes_eng = np.stack([program_values(prog, c)[0][tid].reshape(-1) for c in eng._nhwc(x)])
    lsb = np.abs(codes_eng.astype(np.int64) - codes_ort.reshape(len(x), -1))
    w = eng.trained_graph().node(head.name).params["weight"].reshape(10, -1)
    bound = lsb.max() * g10.quant[xin].scale * np.abs(w).sum(1) + 1e-4
    print(f"exported QDQ with a float head: head input max {lsb.max()} LSB "
          f"({100 * np.mean(lsb > 0):.1f}% differ), logits max |diff| "
          f"{np.abs(got - ref).max():.2e}")
    assert lsb.max() <= END_TO_END_LSB
    assert np.all(np.abs(got - ref) <= bound)
    # imported again: the head is the trained float one, the trunk's codes the engine's
    g2, tg = load_onnx(str(path)), eng.trained_graph()
    assert g2.node(head.name).quant is None
    np.testing.assert_array_equal(g2.node(head.name).params["weight"],
                                  tg.node(head.name).params["weight"])
    for n in names:
        if n != head.name:
            np.testing.assert_array_equal(c_weight_layout(g2, g2.node(n), g2.node(n).quant.weight_q),
                                          _layer(eng, n).s8.weight_q)


def test_weights_off_the_int8_grid_are_refused(mcunet, tmp_path):
    n = mcunet.trainable_nodes()[-1]
    g = mcunet.with_weights({n.name: (n.params["weight"] * 1.001, n.params["bias"])})
    with pytest.raises(MedyateError, match=f"{n.name}.*not int8 codes of its scales"):
        export_onnx(g, str(tmp_path / "x.onnx"), qdq=True)
    assert not (tmp_path / "x.onnx").exists()


def test_a_float_model_is_not_exported_as_qdq(tmp_path):
    g = load_onnx(str(MODELS / "mcunet-tiny.onnx"))
    with pytest.raises(MedyateError, match="not quantized"):
        export_onnx(g, str(tmp_path / "x.onnx"), qdq=True)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_session_exports_qdq_for_int8_and_float_for_fp32(precision, tmp_path):
    """The session's finetuned.onnx: QDQ for an int8 plan (onnxruntime gives the
    engine's logits within the bound above), float ONNX as before for fp32, on
    the bundled mcunet-tiny quantized as the int8 path's users quantize it."""
    from medyate.algo.plan import make_plan
    from medyate.algo.trainer import HostEngineFactory
    from medyate.data import bundled_model, load_task
    from medyate.ir.quantize import quantize_model
    from medyate.session.run import Progress, run_session

    class Quiet(Progress):
        def line(self, text):
            pass

    task = load_task("fmnist-5to9", n_train=32, n_test=16)
    path = tmp_path / "mcunet-tiny-int8.onnx"
    quantize_model(bundled_model("mcunet-tiny"), path, task.x_train)
    graph = load_onnx(str(path))
    plan, _ = make_plan(path, graph, task, elements=3000, board="qemu-mps2-an500", batch=8,
                        epochs=1, lr=0.05, seed=3, ranking_samples=16,
                        precision=precision, log=lambda s: None)
    factory = HostEngineFactory(graph, precision=precision)
    run_session(graph, plan, task, factory, tmp_path / "run", 1, progress=Quiet())
    out = tmp_path / "run" / "finetuned.onnx"
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert ("QuantizeLinear" in ops) == (precision == "int8")
    g2 = load_onnx(str(out))
    assert g2.is_quantized == (precision == "int8")
    if precision == "int8":
        eng = HostEngine(g2, precision="int8")
        got = eng.forward(task.x_test)
        ref = _ort(out, fused=False).run(None, {g2.input: task.x_test})[0]
        lsb = np.abs(got - ref) / graph.quant[graph.output].scale
        print(f"mcunet-tiny int8 session's finetuned.onnx in onnxruntime: max "
              f"{lsb.max():.0f} LSB, {100 * np.mean(lsb > 0.5):.1f}% of {lsb.size} logits differ")
        assert lsb.max() <= END_TO_END_LSB
