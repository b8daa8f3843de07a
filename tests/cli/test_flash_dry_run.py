"""`medyate-flash --dry-run` without --out leaves no temporary folder behind,
and the `medyate train` command it suggests has every argument train needs."""
import shlex
import tempfile

import pytest

from medyate.cli import build_parser
from medyate.commands import flash
from medyate.data import bundled_model
from medyate.planner.plan import TrainPlan, file_sha256


@pytest.fixture
def tmpdir_root(tmp_path, monkeypatch):
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setenv("PATH", "")          # no probe tool: nothing could run anyway
    return root


@pytest.fixture
def elf(tmp_path):
    p = tmp_path / "fw" / "firmware.elf"
    p.parent.mkdir()
    p.write_bytes(b"\x7fELF-not-really")
    p.with_suffix(".bin").write_bytes(bytes(256))
    return p


def _suggested(out: str):
    line = next(l for l in out.splitlines() if l.startswith("# then: "))
    cmd = line[len("# then: "):].split("   (")[0]
    argv = shlex.split(cmd)
    assert argv[:2] == ["medyate", "train"], cmd
    return build_parser().parse_args(argv[1:]), cmd


def test_dry_run_without_out_leaves_nothing(tmpdir_root, elf, capsys):
    assert flash.main(["--board", "nucleo-f746", "--elf", str(elf), "--dry-run"]) == 0
    assert list(tmpdir_root.iterdir()) == []
    out = capsys.readouterr().out
    args, cmd = _suggested(out)
    # every argument a new session needs is there, placeholders where flash cannot know
    assert args.model and args.plan and args.data and args.out, cmd
    assert args.board == "nucleo-f746" and args.port, cmd
    assert "..." not in cmd


def test_flash_without_out_leaves_nothing(tmpdir_root, elf, tmp_path, monkeypatch, capsys):
    # the read-back goes into the temporary directory too
    drive = tmp_path / "media" / "NODE_F746ZG"
    drive.mkdir(parents=True)
    monkeypatch.setattr(flash, "MOUNT_ROOTS", [str(tmp_path / "media")])
    monkeypatch.setattr(flash, "MASS_STORAGE_SETTLE", 0.2)
    assert flash.main(["--elf", str(elf), "--probe", "mass-storage"]) == 0
    assert list(tmpdir_root.iterdir()) == []


def test_suggested_command_of_a_plan_and_data_is_the_real_one(tmpdir_root, elf, tmp_path,
                                                              monkeypatch, capsys):
    from medyate.ir.onnx_import import load_onnx
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-2:], budget_elements=2000)
    plan_file = tmp_path / "my plan.json"
    plan.save(plan_file)
    built = {}

    def image_from_plan(plan, board, workdir, data):
        built["dir"] = workdir
        return elf, None                      # no firmware build in this test
    monkeypatch.setattr(flash, "_image_from_plan", image_from_plan)
    assert flash.main(["--plan", str(plan_file), "--data", "digits", "--n-train", "40",
                       "--dry-run"]) == 0
    assert not built["dir"].exists() and list(tmpdir_root.iterdir()) == []
    args, cmd = _suggested(capsys.readouterr().out)
    assert args.model == str(path) and args.plan == str(plan_file), cmd
    assert args.data == "digits" and args.n_train == 40 and args.out, cmd
