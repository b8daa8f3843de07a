"""planner.footprint: a plan's whole device RAM from the arena plan and the
board's facts, and the report that names every part of it."""
import json

import pytest

from medyate.boards import BOARDS_DIR, get_board
from medyate.data import bundled_model
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.planner import footprint
from medyate.planner.arena import plan_arena
from medyate.planner.program import lower


@pytest.fixture(scope="module")
def program():
    g = load_onnx(str(bundled_model("mbv2-tiny")))
    names = [n.name for n in g.trainable_nodes()]
    prog = lower(g.copy(), names[-3:], True)
    plan_arena(prog, 6000)
    return prog


@pytest.mark.parametrize("board", ["qemu-mps2-an500", "nucleo-f746", "host"])
def test_footprint_adds_the_boards_own_stack_and_static(program, board):
    spec = json.loads((BOARDS_DIR / board / "board.json").read_text())
    fp = footprint.ram_footprint(program, board)
    plan = footprint.memory_breakdown(program)
    assert fp["arena"] == program.memory.arena_size == plan["arena"]
    weights = sum(4 * (program.ops[l.op].weight.size + program.ops[l.op].bias.size)
                  for l in program.layers)
    assert fp["trainable_weights"] == weights == plan["trainable_weights"]
    if spec["arch"] == "native":
        assert fp["static"] == fp["stack"] == 0
    else:
        assert fp["stack"] == spec["stack_default"] == 2048
        assert fp["static"] == footprint.DEVICE_STATIC_BASE_BYTES + 4 * 28 * 28
    assert fp["total"] == fp["arena"] + fp["trainable_weights"] + fp["static"] + fp["stack"]


def test_board_json_is_read_once(program):
    assert get_board("nucleo-f746") is get_board("nucleo-f746")
    with pytest.raises(MedyateError, match="unknown board 'nope'"):
        footprint.ram_footprint(program, "nope")


def test_report_defines_parts_names_layers_and_gives_the_budget_share(program):
    budget = 256 * 1024
    mp = footprint.memory_plan(program, "nucleo-f746", budget)
    assert mp["total"] == footprint.ram_footprint(program, "nucleo-f746")["total"]
    assert set(mp["arena_parts"]) <= set(footprint.ARENA_PARTS)
    assert sum(mp["arena_parts"].values()) >= mp["arena"] >= mp["arena_lower_bound"]
    assert list(mp["layers"]) == [l.name for l in program.layers]
    assert sum(mp["layers"].values()) == mp["trainable_weights"]
    assert mp["percent_of_budget"] == pytest.approx(100 * mp["total"] / budget)
    text = footprint.format_memory_plan(mp)
    for kind in mp["arena_parts"]:
        assert footprint.ARENA_PARTS[kind] in text
    for name in mp["layers"]:
        assert name in text
    assert f"{mp['percent_of_budget']:.1f}% of the {budget} B budget" in text
    assert "% of the" not in footprint.format_memory_plan(
        footprint.memory_plan(program, "nucleo-f746"))


def test_a_plan_files_footprint_is_its_programs(program):
    from types import SimpleNamespace
    g = load_onnx(str(bundled_model("mbv2-tiny")))
    plan = SimpleNamespace(layers=[l.name for l in program.layers], train_bias=True,
                           budget_elements=6000)
    assert footprint.plan_footprint(g, plan, "nucleo-f746") == \
        footprint.ram_footprint(program, "nucleo-f746")
