"""User data (.npz and image folders) and every error path, with its message."""
import builtins

import numpy as np
import pytest

from medyate.data import MEAN, STD, check_task, load_task, read_netpbm
from medyate.data.task import Task, validate
from medyate.errors import MedyateError

RNG = np.random.default_rng(0)


def _arrays(n_tr=12, n_te=6, c=1, hw=28, k=3, dtype=np.uint8):
    x = lambda n: (RNG.integers(0, 256, (n, c, hw, hw)).astype(dtype)
                   if dtype == np.uint8 else RNG.normal(size=(n, c, hw, hw)).astype(dtype))
    return dict(x_train=x(n_tr), y_train=np.arange(n_tr) % k,
                x_test=x(n_te), y_test=np.arange(n_te) % k)


def _npz(tmp_path, name="d.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


# ---------------------------------------------------------------- npz

def test_npz_uint8_default_normalisation(tmp_path):
    a = _arrays()
    t = load_task(_npz(tmp_path, **a))
    assert t.name == "d" and t.n_classes == 3 and t.x_train.dtype == np.float32
    np.testing.assert_allclose(t.x_train, (a["x_train"] / 255.0 - MEAN) / STD, atol=1e-5)
    assert t.y_train.dtype == np.int64
    check_task(t, (1, 1, 28, 28), n_outputs=10)
    assert "3 classes" in t.describe()


def test_npz_uint8_own_mean_std_and_classes(tmp_path):
    a = _arrays(c=3)
    t = load_task(_npz(tmp_path, **a, mean=np.array([0.1, 0.2, 0.3]),
                       std=np.array([0.5]), classes=np.array(["a", "b", "c", "d"])))
    assert t.classes == ["a", "b", "c", "d"]
    want = (a["x_test"] / 255.0 - np.array([0.1, 0.2, 0.3]).reshape(1, 3, 1, 1)) / 0.5
    np.testing.assert_allclose(t.x_test, want, atol=1e-5)
    assert t.mean == pytest.approx((0.1, 0.2, 0.3)) and t.std == pytest.approx((0.5,) * 3)


def test_npz_float_used_as_given_or_normalised(tmp_path):
    a = _arrays(dtype=np.float32)
    t = load_task(_npz(tmp_path, **a))
    np.testing.assert_array_equal(t.x_train, a["x_train"])
    assert "none applied" in t.describe()
    t = load_task(_npz(tmp_path, "e.npz", **a, mean=np.float32(1.0), std=np.float32(2.0)))
    np.testing.assert_allclose(t.x_train, (a["x_train"] - 1) / 2, atol=1e-6)


def test_npz_subset_is_seeded(tmp_path):
    p = _npz(tmp_path, **_arrays(n_tr=30))
    a, b = load_task(p, seed=3, n_train=9), load_task(p, seed=3, n_train=9)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert len(a.y_train) == 9 and np.bincount(a.y_train).tolist() == [3, 3, 3]


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("y_test"), "missing array.*y_test"),
    (lambda a: a.update(x_train=a["x_train"][:, 0]), r"x_train has shape \(12, 28, 28\).*NCHW"),
    (lambda a: a.update(x_test=a["x_test"][:0], y_test=a["y_test"][:0]), "test split is empty"),
    (lambda a: a.update(y_train=a["y_train"][:5]), "y_train has shape .5,. but x_train has 12"),
    (lambda a: a.update(y_test=a["y_test"] - 1), "label -1 in y_test is out of range"),
    (lambda a: a.update(classes=np.array(["a", "b"])), "label 2 in y_train is out of range.*"
                                                        "2 classes"),
    (lambda a: a.update(x_test=a["x_test"][:, :, :20, :20]), "train samples have shape"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.int32)), "dtype int32"),
    (lambda a: a.update(y_train=a["y_train"] + 0.5), "integer class labels"),
    (lambda a: a.update(mean=np.float32(0.5)), "both 'mean' and 'std'"),
    (lambda a: a.update(mean=np.zeros(2), std=np.ones(2)), "'mean' has 2 values.*1 channels"),
    (lambda a: a.update(mean=np.zeros(1), std=np.zeros(1)), "'std' must be positive"),
    (lambda a: a.update(y_train=a["y_train"] * 0, y_test=a["y_test"] * 0),
     "y_train holds only class 0; a task needs at least 2 classes"),
    (lambda a: a.update(x_train=a["x_train"][:0], y_train=a["y_train"][:0]), "train split is empty"),
    (lambda a: a.update(x_train=np.where(np.arange(12)[:, None, None, None] == 3, np.inf,
                                         a["x_train"].astype(np.float32))),
     "x_train holds NaN or infinite values"),
])
def test_npz_errors(tmp_path, change, message):
    a = _arrays()
    change(a)
    with pytest.raises(MedyateError, match=message):
        load_task(_npz(tmp_path, **a))


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(MedyateError, match="cannot read .*bad.npz as an .npz file"):
        load_task(bad)
    with pytest.raises(MedyateError, match="data not found"):
        load_task(tmp_path / "nope.npz")
    other = tmp_path / "data.csv"
    other.write_text("1,2\n")
    with pytest.raises(MedyateError, match="unsupported data file"):
        load_task(other)


def test_nan_is_rejected(tmp_path):
    a = _arrays(dtype=np.float32)
    a["x_train"][0, 0, 0, 0] = np.nan
    with pytest.raises(MedyateError, match="NaN or infinite"):
        load_task(_npz(tmp_path, **a))


def test_check_task_shape_and_outputs(tmp_path):
    t = load_task(_npz(tmp_path, **_arrays(hw=32)))
    with pytest.raises(MedyateError, match=r"CHW \(1, 32, 32\).*model's input is CHW "
                                           r"\(1, 28, 28\)"):
        check_task(t, (1, 1, 28, 28))
    check_task(t, ("batch", 1, 32, 32))
    check_task(t, (1, 32, 32))
    with pytest.raises(MedyateError, match="3 classes but the model's classifier has only 2"):
        check_task(t, (1, 1, 32, 32), n_outputs=2)


def test_validate_missing_split():
    t = Task("t", None, None, np.zeros((1, 1, 2, 2)), np.zeros(1, int), ["a"])
    with pytest.raises(MedyateError, match="train split is missing"):
        validate(t)


# ---------------------------------------------------------------- folders

def _pgm(path, img, binary=True):
    h, w = img.shape
    if binary:
        path.write_bytes(b"P5\n# comment\n%d %d\n255\n" % (w, h) + img.astype(np.uint8).tobytes())
    else:
        body = " ".join(str(int(v)) for v in img.ravel())
        path.write_text(f"P2\n{w} {h}\n15\n{body}\n")


def _folder(tmp_path, n=2, classes=("cat", "dog"), hw=28, test_classes=None):
    root = tmp_path / "imgs"
    for split, cls in (("train", classes), ("test", test_classes or classes)):
        for c in cls:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                _pgm(d / f"{i}.pgm", RNG.integers(0, 256, (hw, hw)))
    return root


def test_folder_pgm(tmp_path):
    root = _folder(tmp_path)
    t = load_task(root)
    assert t.classes == ["cat", "dog"] and t.name == "imgs"
    assert t.x_train.shape == (4, 1, 28, 28) and t.y_train.tolist() == [0, 0, 1, 1]
    raw = read_netpbm(root / "train" / "dog" / "1.pgm")
    # default normalisation: the training split's own per-channel statistics
    train = np.stack([read_netpbm(root / "train" / c / f"{i}.pgm") / 255.0
                      for c in ("cat", "dog") for i in range(2)])
    m, s = train.mean(), train.std()
    assert t.mean == pytest.approx((m,), rel=1e-5) and t.std == pytest.approx((s,), rel=1e-5)
    np.testing.assert_allclose(t.x_train[3, 0], (raw / 255.0 - m) / s, atol=1e-4)
    assert abs(float(t.x_train.mean())) < 1e-5
    # a given mean / std is used as it is, for the test split as well
    t = load_task(root, mean=MEAN, std=STD)
    np.testing.assert_allclose(t.x_train[3, 0], (raw / 255.0 - MEAN) / STD, atol=1e-5)
    assert t.mean == pytest.approx((MEAN,)) and t.std == pytest.approx((STD,))
    with pytest.raises(MedyateError, match="both a mean and a std"):
        load_task(root, mean=0.5)


def test_folder_read_at_model_input(tmp_path):
    """A 3x32x32 RGB folder against a 3x32x32 model is read as such; a grayscale
    folder against an RGB model is replicated to 3 channels, and RGB against a
    1-channel model is converted to luma."""
    root = tmp_path / "rgb"
    imgs = {}
    for split in ("train", "test"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            rgb = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            imgs[split, c] = rgb
            (root / split / c / "0.ppm").write_bytes(b"P6 32 32 255\n" + rgb.tobytes())
    t = load_task(root, input_shape=(1, 3, 32, 32), mean=0.0, std=1.0)
    assert t.x_train.shape == (2, 3, 32, 32) and t.x_test.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(t.x_train[1], imgs["train", "b"].transpose(2, 0, 1) / 255.0,
                               atol=1e-6)
    check_task(t, (1, 3, 32, 32), 2)
    t = load_task(root, input_shape=(1, 32, 32), mean=0.0, std=1.0)
    luma = np.round(imgs["train", "a"] @ np.array([0.299, 0.587, 0.114])) / 255.0
    np.testing.assert_allclose(t.x_train[0, 0], luma, atol=1e-6)
    t = load_task(root, input_shape=(3, 32, 32))
    assert len(t.mean) == 3 and len(t.std) == 3
    np.testing.assert_allclose(t.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    gray = _folder(tmp_path, hw=32)
    t = load_task(gray, input_shape=(1, 3, 32, 32))
    assert t.x_train.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(t.x_train[:, 0], t.x_train[:, 2])


def test_folder_png_jpeg_resized_and_ppm(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    root = tmp_path / "mixed"
    for split in ("train", "test"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
        Image.fromarray(RNG.integers(0, 256, (28, 28), dtype=np.uint8)).save(
            root / split / "a" / "x.png")
        Image.fromarray(RNG.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(
            root / split / "b" / "y.jpg")
    rgb = RNG.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    (root / "train" / "b" / "z.ppm").write_bytes(b"P6 28 28 255\n" + rgb.tobytes())
    t = load_task(root)
    assert t.x_train.shape == (3, 1, 28, 28) and t.y_train.tolist() == [0, 1, 1]


def test_netpbm_ascii_and_16bit(tmp_path):
    img = RNG.integers(0, 16, (3, 4))
    _pgm(tmp_path / "a.pgm", img, binary=False)
    np.testing.assert_array_equal(read_netpbm(tmp_path / "a.pgm"),
                                  np.round(img * 255 / 15).astype(np.uint8))
    (tmp_path / "b.pgm").write_bytes(b"P5 2 1 65535\n" + np.array([0, 65535], ">u2").tobytes())
    assert read_netpbm(tmp_path / "b.pgm").tolist() == [[0, 255]]


def test_folder_without_pillow(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pil(name, *a, **k):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("no PIL")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    assert load_task(_folder(tmp_path)).x_train.shape == (4, 1, 28, 28)
    (tmp_path / "imgs" / "train" / "cat" / "p.png").write_bytes(b"\x89PNG")
    with pytest.raises(MedyateError, match="needs Pillow"):
        load_task(tmp_path / "imgs")
    with pytest.raises(MedyateError, match="is 20x20 pixels, not 28x28; resizing needs Pillow"):
        load_task(_folder(tmp_path / "small", hw=20))


@pytest.mark.parametrize("setup, message", [
    (lambda r: __import__("shutil").rmtree(r / "test"), "missing the test/ sub-folder"),
    (lambda r: [p.unlink() for p in (r / "test").rglob("*.pgm")], "test split is empty"),
    (lambda r: (r / "test" / "bird").mkdir(), "class folder.*bird.*no counterpart in train"),
    (lambda r: (r / "train" / "cat" / "0.pgm").write_bytes(b"P5 28 28 255\n\0\0"),
     "cannot read image .*0.pgm"),
])
def test_folder_errors(tmp_path, setup, message):
    root = _folder(tmp_path)
    setup(root)
    with pytest.raises(MedyateError, match=message):
        load_task(root)


def test_folder_without_classes(tmp_path):
    (tmp_path / "e" / "train").mkdir(parents=True)
    (tmp_path / "e" / "test").mkdir()
    with pytest.raises(MedyateError, match="no class sub-folders"):
        load_task(tmp_path / "e")


def test_folder_with_fewer_test_classes(tmp_path):
    t = load_task(_folder(tmp_path, classes=("a", "b", "c"), test_classes=("c",)))
    assert t.n_classes == 3 and set(t.y_test.tolist()) == {2}


@pytest.mark.parametrize("raw,msg", [
    (b"P2 0 2 255\n", "width 0 is not a positive image size"),
    (b"P5 2 0 255\n", "height 0 is not a positive image size"),
    (b"P2 -3 2 255\n1 2 3 4 5 6", "header field '-3' is not a non-negative integer"),
    (b"P2 2 1 15\n3 16", "pixel value 16 outside 0..15"),
    (b"P2 2 1 255\n3 -1", "pixel value -1 outside 0..255"),
    (b"P5 2 1 255\n\x01", "cannot read image"),
    (b"P2 2 x 255\n1 2", "header field 'x'"),
])
def test_netpbm_bad_header_or_values(tmp_path, raw, msg):
    p = tmp_path / "bad.pgm"
    p.write_bytes(raw)
    with pytest.raises(MedyateError, match=msg):
        read_netpbm(p)


def test_describe_loaded_names_classes_counts_and_outputs(tmp_path):
    from medyate.commands.common import describe_loaded
    from medyate.session.model import load_for_task
    root = _folder(tmp_path, n=3, classes=("cat", "dog", "owl"))
    t = load_task(root)
    _, graph, _ = load_for_task("mbv2-tiny", task=t, log=None)
    text = describe_loaded(t, graph)
    assert "3 classes" in text and "train 9 samples" in text and "test 9 samples" in text
    assert "(1, 1, 28, 28)" in text and "normalisation: (x - [" in text
    assert "cat -> 0, dog -> 1, owl -> 2" in text and "3 outputs" in text
