"""Output paths that cannot be written (a read-only place, a missing parent, a
file where a directory is expected) are clear errors before any work, and a
command that fails leaves no half-written output behind."""
import json
import os

import numpy as np
import pytest

from medyate.cli import main
from medyate.commands.flash import main as flash_main
from medyate.data import bundled_model
from medyate.errors import MedyateError
from medyate.outputs import atomic_write
from medyate.planner.plan import TrainPlan, file_sha256

# Root may write anywhere a chmod forbids; /sys is read-only for everyone.
READ_ONLY = "/sys"


def _writable(d):
    try:
        os.rmdir(os.path.join(d, ".medyate-probe")) if os.mkdir(os.path.join(d, ".medyate-probe")) is None else None
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not os.path.isdir(READ_ONLY) or _writable(READ_ONLY),
                                reason=f"{READ_ONLY} is not read-only here")


@pytest.fixture
def plan_file(tmp_path):
    from medyate.ir.onnx_import import load_onnx
    path = bundled_model("mbv2-tiny")
    graph = load_onnx(str(path))
    plan = TrainPlan(model=str(path), model_sha256=file_sha256(path),
                     layers=[n.name for n in graph.trainable_nodes()][-4:], budget_elements=5000)
    p = tmp_path / "plan.json"
    plan.save(p)
    return p


def _bad_paths(tmp_path, kind):
    """(label, path, expected message) for a file or a directory output."""
    f = tmp_path / "a-file"
    f.write_text("x")
    if kind == "file":
        return [("missing parent", tmp_path / "no" / "such" / "out", "does not exist"),
                ("a directory", tmp_path, "is a directory"),
                ("parent a file", f / "out", "is not a directory"),
                ("read-only", f"{READ_ONLY}/medyate-out", "is not writable")]
    return [("a file", f, "is a file, not a directory"),
            ("under a file", f / "run", "is a file"),
            ("read-only", f"{READ_ONLY}/medyate-run", "is not writable")]


def _cmd(name, out, plan_file):
    data = ["--data", "digits", "--n-train", "16", "--n-test", "8"]
    return {
        "plan": ["plan", "mbv2-tiny", *data, "--ram", "256KiB", "--out", str(out)],
        "build": ["build", "mbv2-tiny", "--plan", str(plan_file), "--board", "host",
                  "--out", str(out)],
        "train host": ["train", "mbv2-tiny", "--plan", str(plan_file), *data, "--board", "host",
                       "--out", str(out)],
        "train qemu": ["train", "mbv2-tiny", "--plan", str(plan_file), *data,
                       "--board", "qemu-mps2-an500", "--out", str(out)],
        "demo": ["demo", "--out", str(out)],
    }[name]


@pytest.mark.parametrize("command", ["plan", "build", "train host", "train qemu", "demo"])
def test_unwritable_output_is_a_clear_error(command, tmp_path, plan_file, capsys):
    kind = "file" if command == "plan" else "dir"
    for label, out, msg in _bad_paths(tmp_path, kind):
        rc = main(_cmd(command, out, plan_file))
        err = capsys.readouterr().err
        assert rc == 1 and msg in err and "Traceback" not in err, (label, err)
        assert str(out) in err, (label, err)


def test_flash_unwritable_out(tmp_path, plan_file, capsys):
    for label, out, msg in _bad_paths(tmp_path, "dir"):
        rc = flash_main(["--board", "nucleo-f746", "--plan", str(plan_file), "--dry-run",
                         "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 1 and msg in err, (label, err)


def test_build_of_an_impossible_budget_leaves_no_tree(tmp_path, plan_file, capsys):
    d = json.loads(plan_file.read_text())
    d.update(budget_elements=2, train_bias=False)   # less than any channel
    plan_file.write_text(json.dumps(d))
    out = tmp_path / "build"
    assert main(_cmd("build", out, plan_file)) == 1
    assert "too small" in capsys.readouterr().err
    assert not out.exists()


def test_failing_train_leaves_no_run_directory(tmp_path, plan_file, capsys):
    d = json.loads(plan_file.read_text())
    d.update(budget_elements=2, train_bias=False)
    plan_file.write_text(json.dumps(d))
    out = tmp_path / "run"
    assert main(_cmd("train host", out, plan_file)) == 1
    assert "too small" in capsys.readouterr().err
    assert not out.exists()
    # and in a directory that was there already: no metrics.jsonl
    out.mkdir()
    assert main(_cmd("train host", out, plan_file)) == 1
    assert list(out.iterdir()) == []


def test_train_onto_an_existing_run_needs_force(tmp_path, plan_file, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    assert main(_cmd("train host", out, plan_file)) == 1
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err and f"--resume {out}" in err
    assert [p.name for p in out.iterdir()] == ["metrics.jsonl"]
    assert (out / "metrics.jsonl").read_text() == "{}\n"


def test_resume_of_a_missing_run_directory(tmp_path, plan_file, capsys):
    rc = main(["train", "mbv2-tiny", "--plan", str(plan_file), "--data", "digits",
               "--resume", str(tmp_path / "nope")])
    assert rc == 1 and "no such run directory" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["strings", "empty", "npz", "missing out dir", "read-only out"])
def test_infer_bad_input_or_output(case, tmp_path, capsys):
    x = tmp_path / "x.npy"
    out = tmp_path / "y.npy"
    np.save(x, np.zeros((2, 1, 28, 28), np.float32))
    msg = {"strings": "holds <U1 values; expected numbers", "empty": "is empty",
           "npz": "is an .npz archive", "missing out dir": "does not exist",
           "read-only out": "is not writable"}[case]
    if case == "strings":
        np.save(x, np.array(["a", "b"]))
    elif case == "empty":
        np.save(x, np.zeros((0, 1, 28, 28), np.float32))
    elif case == "npz":
        x = tmp_path / "x.npz"
        np.savez(x, a=np.zeros(3))
    elif case == "missing out dir":
        out = tmp_path / "no" / "y.npy"
    else:
        out = f"{READ_ONLY}/y.npy"
    rc = main(["infer", str(bundled_model("mbv2-tiny")), "--input", str(x), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and msg in err and "Traceback" not in err, err


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    from medyate.outputs import atomic_path
    p = tmp_path / "plan.json"
    atomic_write(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["plan.json"]
    atomic_write(p, "new")
    assert p.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["plan.json"]


def test_atomic_write_to_a_missing_directory(tmp_path):
    with pytest.raises(MedyateError, match="cannot write plan .*No such file"):
        atomic_write(tmp_path / "no" / "plan.json", "x", "plan")
