"""The plan records its data set (name or path, counts, classes, shape, the
normalisation and a hash of the arrays); train and build read an image folder
with the plan's normalisation, a train on other data says so (and still
trains), and `infer --plan` normalises uint8 pixels as the plan's data was."""
import json

import numpy as np
import pytest

from medyate.cli import main
from medyate.data import load_task
from medyate.data.record import data_sha256


def _pgm(path, img):
    path.write_bytes(b"P5\n28 28\n255\n" + img.astype(np.uint8).tobytes())


def _folder(root, seed, n_train=6, extra_bright=0):
    """train/ and test/ with classes a, b, c of 28x28 grey PGM images whose
    brightness depends on the class."""
    rng = np.random.default_rng(seed)
    imgs = {}
    for split, n in (("train", n_train), ("test", 3)):
        for k, c in enumerate("abc"):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n + (extra_bright if split == "train" else 0)):
                base = 250 if i >= n else 40 + 60 * k
                img = np.clip(rng.normal(base, 30, (28, 28)), 0, 255).astype(np.uint8)
                _pgm(d / f"{i}.pgm", img)
                imgs.setdefault(split, []).append(img)
    return root


def _plan(folder, out):
    return main(["plan", "mbv2-tiny", "--data", str(folder), "--elements", "3000",
                 "--ranking-samples", "8", "--epochs", "1", "--lr", "0.01", "--out", str(out)])


def _train_images(folder):
    return np.stack([np.frombuffer(p.read_bytes()[-28 * 28:], np.uint8)
                     for p in sorted((folder / "train").glob("*/*.pgm"))]).astype(np.float64)


@pytest.fixture
def planned(tmp_path, capsys):
    folder = _folder(tmp_path / "imgs", 0)
    assert _plan(folder, tmp_path / "plan.json") == 0
    capsys.readouterr()
    return folder, tmp_path / "plan.json"


def test_the_plan_records_its_data(planned):
    folder, plan = planned
    rec = json.loads(plan.read_text())["data"]
    px = _train_images(folder) / 255.0
    assert rec["source"] == str(folder.resolve()) and rec["classes"] == ["a", "b", "c"]
    assert (rec["n_train"], rec["n_test"], rec["sample_shape"]) == (18, 9, [1, 28, 28])
    # the folder's own statistics, from its training split only
    assert rec["mean"] == pytest.approx([px.mean()], rel=1e-5)
    assert rec["std"] == pytest.approx([px.std()], rel=1e-4)
    task = load_task(folder, input_shape=(1, 1, 28, 28))
    assert rec["sha256"] == data_sha256(task)


def _train(plan, folder, out):
    return main(["train", "mbv2-tiny", "--plan", str(plan), "--data", str(folder),
                 "--epochs", "1", "--out", str(out)])


def test_train_on_the_plans_data_says_nothing(planned, tmp_path, capsys):
    folder, plan = planned
    assert _train(plan, folder, tmp_path / "run") == 0
    assert "warning" not in capsys.readouterr().err


def test_train_on_other_data_warns_and_trains(planned, tmp_path, capsys):
    folder, plan = planned
    other = _folder(tmp_path / "other", 1)
    assert _train(plan, other, tmp_path / "run") == 0
    err = capsys.readouterr().err
    assert "warning: this is not the data the plan was made on" in err
    assert f"data {other.resolve()} (the plan's: {folder.resolve()})" in err
    assert (tmp_path / "run" / "finetuned.onnx").exists()


def test_train_reads_a_changed_folder_with_the_plans_normalisation(planned, tmp_path,
                                                                   capsys, monkeypatch):
    folder, plan = planned
    rec = json.loads(plan.read_text())["data"]
    _folder(folder, 0, extra_bright=4)    # very bright images added to train/
    seen = {}
    import medyate.session.run as run_mod
    real = run_mod.run_session

    def spy(graph, plan, task, *a, **kw):
        seen["task"] = task
        return real(graph, plan, task, *a, **kw)
    monkeypatch.setattr(run_mod, "run_session", spy)
    assert _train(plan, folder, tmp_path / "run") == 0
    err = capsys.readouterr().err
    assert "30 train / 9 test samples (the plan's: 18 / 9)" in err
    # its own statistics would now differ a lot; the plan's are applied
    px = _train_images(folder) / 255.0
    assert abs(px.mean() - rec["mean"][0]) > 0.05
    task = seen["task"]
    assert list(task.mean) == pytest.approx(rec["mean"]) and list(task.std) == pytest.approx(rec["std"])
    want = (px.reshape(-1, 1, 28, 28) - rec["mean"][0]) / rec["std"][0]
    np.testing.assert_allclose(np.sort(task.x_train.ravel()), np.sort(want.ravel()), atol=1e-5)


def test_infer_with_the_plan_normalises_uint8_pixels(planned, tmp_path):
    folder, plan = planned
    rec = json.loads(plan.read_text())["data"]
    model = "mbv2-tiny"
    px = np.random.default_rng(5).integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "px.npy", px)
    x = ((px / 255.0 - rec["mean"][0]) / rec["std"][0]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["infer", model, "--plan", str(plan), "--input", str(tmp_path / "px.npy"),
                 "--out", str(tmp_path / "a.npy")]) == 0
    assert main(["infer", model, "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "b.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"),
                               rtol=1e-5, atol=1e-6)


def test_a_hand_edited_data_record_is_refused_naming_the_field(planned, tmp_path, capsys):
    folder, plan = planned
    d = json.loads(plan.read_text())
    d["data"]["std"] = [0.0]
    plan.write_text(json.dumps(d))
    assert _train(plan, folder, tmp_path / "run") == 1
    assert "data.std[0] must be greater than 0" in capsys.readouterr().err


def test_a_plan_without_a_data_record_trains_as_before(planned, tmp_path, capsys):
    folder, plan = planned
    d = json.loads(plan.read_text())
    del d["data"]
    plan.write_text(json.dumps(d))
    assert _train(plan, folder, tmp_path / "run") == 0
    assert "warning" not in capsys.readouterr().err
