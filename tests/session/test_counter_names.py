"""A device epoch's counter is written to metrics.jsonl under the name of what
it counts, and the console calls it the same: instructions in QEMU (whose
counter counts instructions), cycles on a board with a DWT cycle counter."""
import json
import re

import pytest

from medyate.algo.trainer import HostEngineFactory
from medyate.boards import get_board
from medyate.data import bundled_model, load_task
from medyate.engine.host import HostEngine
from medyate.ir.onnx_import import load_onnx
from medyate.planner.plan import TrainPlan, file_sha256
from medyate.session.run import Progress, run_session


def test_each_board_names_what_its_counter_counts():
    assert get_board("qemu-mps2-an500").counter_unit == "instructions"
    assert get_board("nucleo-f746").counter_unit == "cycles"
    assert get_board("host").counter_unit == "nanoseconds"


@pytest.mark.parametrize("board", ["qemu-mps2-an500", "nucleo-f746"])
def test_metrics_field_is_what_the_console_says(board, tmp_path, monkeypatch):
    unit = get_board(board).counter_unit
    real = HostEngine.train_epoch

    def train_epoch(self, *a, **kw):
        res = real(self, *a, **kw)
        # what a DeviceTrainer's epoch carries besides the host's
        res.cycles, res.stack_high_water, res.counter = 42_000_000, 900, unit
        return res
    monkeypatch.setattr(HostEngine, "train_epoch", train_epoch)

    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-2:], budget_elements=2000,
                     batch=8, epochs=1, lr=0.01, warmup_epochs=0)
    lines = []

    class Said(Progress):
        def __init__(self):
            self.live, self.bar = False, False

        def line(self, text):
            lines.append(text)
    run_session(graph, plan, load_task("digits", n_train=16, n_test=8), HostEngineFactory(graph),
                tmp_path, progress=Said())
    rec = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert rec[unit] == 42_000_000 and rec["stack_high_water"] == 900
    others = {"instructions", "cycles", "nanoseconds"} - {unit}
    assert not others & set(rec)
    said = next(l for l in lines if l.startswith("epoch 1/1:"))
    assert re.search(rf"\b42 M {unit}\b", said), said
