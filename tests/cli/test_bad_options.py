"""Bad option values stop a command at parse time, naming the option and its
limit, before any model is loaded or any file is written."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from medyate.cli import main
from medyate.data import bundled_model

PLAN = ["plan", "mbv2-tiny", "--data", "digits", "--ram", "256KiB"]
TRAIN = ["train", "mbv2-tiny", "--plan", "plan.json", "--data", "digits", "--out", "r"]

CASES = [
    (PLAN + ["--batch", "0"], "--batch: must be at least 1 (got '0')"),
    (PLAN + ["--batch", "100000"], "--batch: must be at most 65535"),
    (PLAN + ["--batch", "1.5"], "--batch: must be an integer"),
    (PLAN + ["--epochs", "0"], "--epochs: must be at least 1"),
    (PLAN + ["--ranking-samples", "-3"], "--ranking-samples: must be at least 1"),
    (PLAN + ["--lr", "nan"], "--lr: must be a finite number"),
    (PLAN + ["--lr", "inf"], "--lr: must be a finite number"),
    (PLAN + ["--lr", "1e30"], "--lr: must be at most 10.0"),
    (PLAN + ["--lr", "0"], "--lr: must be greater than 0"),
    (PLAN + ["--temperature", "nan"], "--temperature: must be a finite number"),
    (PLAN + ["--temperature", "-1"], "--temperature: must be at least 0"),
    (PLAN + ["--elements", "0"], "--elements: must be at least 1"),
    (PLAN + ["--elements", "-5"], "--elements: must be at least 1"),
    (PLAN + ["--seed", "-1"], "--seed: must be at least 0"),
    (PLAN + ["--n-train", "0"], "--n-train: must be at least 1"),
    # no budget, or two: refused before the data is read or the ranking run spent
    (PLAN[:4], "one of the arguments --ram --elements is required"),
    (PLAN[:4] + ["--elements", "1000", "--ram", "256KiB"], "not allowed with argument"),
    (TRAIN + ["--epochs", "0"], "--epochs: must be at least 1"),
    (TRAIN + ["--epochs", "-1"], "--epochs: must be at least 1"),
    (["demo", "--lr", "-1"], "--lr: must be greater than 0"),
    (["demo", "--batch", "0"], "--batch: must be at least 1"),
    (["demo", "--epochs", "0"], "--epochs: must be at least 1"),
]


@pytest.mark.parametrize("argv,msg", CASES, ids=[" ".join(a[-2:]) + f" ({a[0]})" for a, _ in CASES])
def test_bad_option_is_a_usage_error(argv, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []        # nothing written


def test_model_with_one_nan_weight_is_refused_naming_it(tmp_path):
    from medyate.errors import MedyateError
    from medyate.ir.onnx_import import load_onnx
    m = onnx.load(str(bundled_model("mbv2-tiny")))
    t = max(m.graph.initializer, key=lambda t: np.prod(t.dims))
    a = numpy_helper.to_array(t).copy()
    a.reshape(-1)[7] = np.nan
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    p = tmp_path / "nan.onnx"
    onnx.save(m, str(p))
    with pytest.raises(MedyateError, match=f"initializer '{t.name}' holds 1 NaN or infinite"):
        load_onnx(str(p))


def test_plan_elements_too_small_leaves_no_plan(tmp_path, capsys):
    out = tmp_path / "plan.json"
    rc = main(["plan", "mbv2-tiny", "--data", "digits", "--n-train", "16", "--n-test", "8",
               "--ranking-samples", "8", "--elements", "1", "--out", str(out)])
    assert rc == 1 and "channel budget 1 elements is too small" in capsys.readouterr().err
    assert not out.exists()
