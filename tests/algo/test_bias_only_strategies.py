"""Strategies that train biases of layers whose weights stay frozen (`bias`, and
`su`'s bias layers) ask the engine for those layers as bias-only
(EngineSpec.bias_only): the same training, bit for bit, as the layers trainable
with no channel selected, but their weights stay in flash, so the run's RAM
drops by exactly those weights. The planner's memory function and plan.json
carry the same layers."""
from __future__ import annotations

import dataclasses

import pytest

from medyate.algo import strategies as S
from medyate.algo.plan import planner_memory_fn
from medyate.algo.su_schemes import SUScheme
from medyate.algo.trainer import HostEngineFactory
from medyate.data import bundled_model, load_task
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.planner import footprint
from medyate.planner.arena import plan_arena
from medyate.planner.plan import TrainPlan, load_plan, plan_from_dict
from medyate.planner.program import lower

HEAD = "/classifier/Gemm"


@pytest.fixture(scope="module")
def graph():
    return load_onnx(str(bundled_model("mcunet-tiny")))


@pytest.fixture(scope="module")
def task():
    return load_task("fmnist-5to9", n_train=40, n_test=16)


def _weight_bytes(graph, names):
    return sum(4 * graph.node(n).params["weight"].size for n in names)


def _as_before(strategy):
    """`strategy` with its own spec minus the bias-only layers: they train as
    ordinary trainable layers none of whose channels is selected. Returns
    (strategy, list that gets the layers it had as bias-only)."""
    prepare, frozen = strategy.prepare, []

    def plain(ctx):
        spec = prepare(ctx)
        frozen.extend(spec.bias_only)
        return dataclasses.replace(spec, bias_only=[])
    strategy.prepare = plain
    return strategy, frozen


@pytest.mark.parametrize("make", [
    lambda: S.BiasOnly(always=[HEAD]),
    lambda: S.StaticSparseUpdate(scheme=SUScheme(n_bias=6, weight_idx=(0, 1, 2),
                                                 ratio=(0.5, 0.25, 0.0)), always=[HEAD]),
    lambda: S.StaticSparseUpdate(n_weight_layers=2, n_bias_layers=5),
], ids=["bias", "su-scheme", "su"])
def test_bias_only_strategies_train_the_same_in_less_ram(graph, task, make):
    factory = HostEngineFactory(graph)
    kw = dict(epochs=2, batch=8, lr=0.05, seed=1, budget=600)
    got = S.run_strategy(factory, task, make(), **kw)
    before, frozen = _as_before(make())
    ref = S.run_strategy(factory, task, before, **kw)
    assert frozen, "the strategy names no bias-only layer"
    for g, r in zip(got, ref):
        for k in ("loss", "train_acc", "test_loss", "test_acc", "channels", "elements"):
            assert g[k] == r[k], k
        # the weights, and (the pool holding no channel of theirs) maybe a
        # smaller selection and statistics area
        assert r["bytes"] - g["bytes"] >= _weight_bytes(graph, frozen)


def test_planner_memory_fn_passes_bias_only_through(graph):
    names = [n.name for n in graph.trainable_nodes()]
    layers, bias_only = names[-5:], names[-5:-2]
    for board in (None, "nucleo-f746"):
        fn = planner_memory_fn(graph, board)
        prog = lower(graph.copy(), layers, True, "fp32", bias_only)
        plan_arena(prog, 800)
        want = (footprint.memory_breakdown(prog)["total"] if board is None
                else footprint.ram_footprint(prog, board)["total"])
        assert fn(layers, True, bias_only)(800) == want
        assert fn(layers, True)(800) - want == _weight_bytes(graph, bias_only)


def _plan(graph, **kw):
    names = [n.name for n in graph.trainable_nodes()]
    d = dict(model="m.onnx", model_sha256=graph.source_sha256 or "0" * 64,
             layers=names[-3:], budget_elements=500, train_bias=True,
             bias_only=[names[-3]], strategy="fixed", selection=[[1, 0], [2, 3]])
    d.update(kw)
    return TrainPlan(**d)


def test_plan_json_carries_bias_only(graph, tmp_path):
    plan = _plan(graph)
    plan.save(tmp_path / "plan.json")
    back = load_plan(tmp_path / "plan.json")
    assert back.bias_only == plan.bias_only
    fp = footprint.plan_footprint(graph, back, "nucleo-f746")
    full = footprint.plan_footprint(graph, dataclasses.replace(back, bias_only=[]), "nucleo-f746")
    assert full["trainable_weights"] - fp["trainable_weights"] == \
        _weight_bytes(graph, plan.bias_only)
    raw = {"model": "m.onnx", "model_sha256": "0" * 64, "layers": plan.layers,
           "budget_elements": 500}
    with pytest.raises(MedyateError, match=r"selection\[1\] names a channel of .*only its bias"):
        plan_from_dict({**raw, "bias_only": [plan.layers[1]], "selection": [[0, 0], [1, 2]]},
                       "plan")
    with pytest.raises(MedyateError, match="bias_only names layer.*not in layers: nope"):
        plan_from_dict({**raw, "bias_only": ["nope"]}, "plan")


def test_the_checkpoint_hash_of_older_plans_is_kept(graph):
    from medyate.session.checkpoint import plan_sha256
    plan = _plan(graph, bias_only=[], selection=[])
    d = dataclasses.asdict(plan)
    d.pop("bias_only")
    # a plan record of before the field existed
    old = dataclasses.make_dataclass("Old", list(d))(**d)
    assert plan_sha256(plan) == plan_sha256(old)
    assert plan_sha256(_plan(graph, selection=[])) != plan_sha256(plan)
