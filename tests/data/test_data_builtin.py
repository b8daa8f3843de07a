"""Builtin tasks: shapes, dtypes, label ranges, seeded determinism, disjoint splits, and
that no downstream training image was seen in pre-training."""
import numpy as np
import pytest

from medyate.data import (BUILTIN_TASKS, MEAN, SOURCE_TASK, STD, bilinear_matrix,
                          check_task, load_task, source_task)
from medyate.data import builtin
from medyate.errors import MedyateError

EXPECTED_CLASSES = {"fmnist-5to9": 5, "digits": 10, "fmnist-inv": 10, SOURCE_TASK: 5}


@pytest.fixture(scope="module")
def tasks():
    return {n: load_task(n, seed=0) for n in BUILTIN_TASKS}


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_shapes_dtypes_labels(tasks, name):
    t = tasks[name]
    assert t.name == name
    assert t.x_train.shape == (1000, 1, 28, 28) and t.x_test.shape == (500, 1, 28, 28)
    assert t.x_train.dtype == np.float32 and t.x_test.dtype == np.float32
    assert t.y_train.dtype == np.int64 and t.y_test.dtype == np.int64
    assert t.n_classes == EXPECTED_CLASSES[name] == len(t.classes)
    for y in (t.y_train, t.y_test):
        assert y.min() == 0 and y.max() == t.n_classes - 1
        counts = np.bincount(y)
        assert counts.max() - counts.min() <= 1           # class-balanced
    assert t.input_shape == (1, 1, 28, 28)
    check_task(t, (1, 1, 28, 28), n_outputs=10)
    # normalised: pixel 0 and 1 map to these bounds
    lo, hi = (0 - MEAN) / STD, (1 - MEAN) / STD
    assert t.x_train.min() >= lo - 1e-5 and t.x_train.max() <= hi + 1e-5
    assert name in t.describe() and "train 1000" in t.describe()


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_seed_determinism(tasks, name):
    a, b = tasks[name], load_task(name, seed=0)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    c = load_task(name, seed=1)
    assert not np.array_equal(a.train_index, c.train_index)


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_no_train_test_overlap(tasks, name):
    t = tasks[name]
    if name == "digits":
        # both splits index the same 1,797 images
        assert not set(t.train_index) & set(t.test_index)
    # Fashion-MNIST tasks: train rows index the train file, test rows the t10k file
    assert len(set(t.train_index)) == len(t.train_index)
    assert len(set(t.test_index)) == len(t.test_index)
    # and no identical image appears in both splits
    tr = {x.tobytes() for x in t.x_train}
    assert not any(x.tobytes() in tr for x in t.x_test)


def test_downstream_train_images_unseen_in_pretraining(tasks):
    pre, held = builtin._pools()
    assert len(pre) == 50_000 and len(held) == 10_000
    assert not set(pre) & set(held)
    for name in ("fmnist-5to9", "fmnist-inv"):
        assert set(tasks[name].train_index) <= set(held)
    src = source_task(n_train=2000, n_test=100)
    assert set(src.train_index) <= set(pre)


def test_fmnist_5to9_labels_are_classes_5_to_9(tasks):
    t = tasks["fmnist-5to9"]
    _, ytr, _, yte = builtin.fashion_mnist()
    np.testing.assert_array_equal(ytr[t.train_index] - 5, t.y_train)
    np.testing.assert_array_equal(yte[t.test_index] - 5, t.y_test)
    assert t.classes[0] == "Sandal"


def test_fmnist_inv_is_inverted(tasks):
    t = tasks["fmnist-inv"]
    xtr = builtin.fashion_mnist()[0]
    raw = 1.0 - xtr[t.train_index[:5]].astype(np.float32) / 255.0
    np.testing.assert_allclose(t.x_train[:5, 0], (raw - MEAN) / STD, atol=1e-5)


def test_source_task_defaults():
    t = source_task()
    assert t.name == SOURCE_TASK and t.n_classes == 5
    assert len(t.y_test) == 5000 and 24_000 < len(t.y_train) < 26_000
    assert load_task(SOURCE_TASK, n_train=100, n_test=50).x_train.shape == (100, 1, 28, 28)


def test_more_samples_on_request():
    t = load_task("digits", n_train=1297, n_test=500)
    assert len(t.y_train) == 1297
    t = load_task("fmnist-5to9", n_train=3000, n_test=1000)
    assert len(t.y_train) == 3000 and len(t.y_test) == 1000
    with pytest.raises(MedyateError, match="asked for 1298 samples but only 1297"):
        load_task("digits", n_train=1298, n_test=500)
    with pytest.raises(MedyateError, match="must be positive"):
        load_task("digits", n_train=0)


def test_bilinear_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((2, 8, 8))
    r = bilinear_matrix(8, 28)
    ours = np.einsum("ij,njk,lk->nil", r, x, r)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x)[:, None], size=(28, 28),
                                          mode="bilinear", align_corners=False)
    np.testing.assert_allclose(ours, ref[:, 0].numpy(), atol=1e-10)


def test_unknown_task_names_the_builtins():
    with pytest.raises(MedyateError, match="unknown task 'cifar'.*fmnist-5to9"):
        load_task("cifar")


def test_missing_fashion_mnist_names_debian_package(tmp_path, monkeypatch):
    builtin.fashion_mnist.cache_clear()
    monkeypatch.setattr(builtin, "FMNIST_DIR", tmp_path)
    try:
        with pytest.raises(MedyateError, match="apt-get install dataset-fashion-mnist"):
            load_task("fmnist-5to9")
    finally:
        builtin.fashion_mnist.cache_clear()
