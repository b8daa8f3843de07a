"""The weight-gradient MACs of one input channel have one home
(planner.compute.wgrad_macs_per_channel, on the lowered program): it agrees
with the IR's cost model computed from the ONNX shapes, and the host engine's
layer records report it."""
from __future__ import annotations

import pytest

from medyate.data import bundled_model
from medyate.ir import cost
from medyate.ir.onnx_import import load_onnx
from medyate.planner.compute import wgrad_macs_per_channel
from medyate.planner.program import lower


@pytest.mark.parametrize("model", ["mbv2-tiny", "mcunet-tiny"])
def test_wgrad_macs_per_channel_matches_the_ir_cost_model(model):
    g = load_onnx(str(bundled_model(model)))
    names = [n.name for n in g.trainable_nodes()]
    prog = lower(g.copy(), names)
    assert len(prog.layers) == len(names)
    for i, l in enumerate(prog.layers):
        assert wgrad_macs_per_channel(prog, i) == cost.wgrad_macs_per_channel(g, g.node(l.name)), l.name


def test_host_engine_layers_report_it():
    from medyate.engine.host import HostEngine
    g = load_onnx(str(bundled_model("mbv2-tiny")))
    names = [n.name for n in g.trainable_nodes()][-3:]
    eng = HostEngine(g, names, budget_elements=4096)
    assert [l.wgrad_macs_per_channel for l in eng.layers] == \
        [cost.wgrad_macs_per_channel(g, g.node(n)) for n in names]
