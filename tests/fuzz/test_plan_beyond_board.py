"""A plan.json whose budget was edited beyond the board's RAM is refused
before any firmware source is generated, naming the budget and the board's
RAM (the linker would only report an overflowed RAM region later)."""
import pytest

from medyate.boards import get_board
from medyate.data import bundled_model
from medyate.errors import MedyateError
from medyate.ir.onnx_import import load_onnx
from medyate.planner.plan import TrainPlan, file_sha256, load_plan
from medyate.session.firmware import build_device_firmware


def test_budget_beyond_the_board_is_refused_before_building(tmp_path):
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    ram = get_board("nucleo-f746").ram
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-4:],
                     budget_elements=ram)           # ram elements = 4 x ram bytes of floats
    p = tmp_path / "plan.json"
    plan.save(p)
    build = tmp_path / "firmware"
    with pytest.raises(MedyateError, match=rf"budget of {ram} elements needs an arena of \d+ B, "
                                           rf"more than the nucleo-f746 board's RAM of {ram} B"):
        build_device_firmware(graph, load_plan(p), "nucleo-f746", build)
    assert not build.exists()                       # nothing generated
