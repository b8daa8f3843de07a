"""Builtin tasks from real data available without a network.

The split between pre-training and the downstream tasks is defined here, and only here:

* Fashion-MNIST's 60,000 training images are split once, by a fixed permutation
  (seed `POOL_SEED`, independent of any task seed), into a *pre-training pool* of
  50,000 and a *held-out pool* of 10,000. Pre-training only ever sees pre-training-pool
  images of classes 0-4. Downstream training sets come from the held-out pool, so no
  downstream training image was seen in pre-training.
* Test sets come from Fashion-MNIST's separate 10,000-image test file (t10k).

Tasks:
    fmnist-0to4   the source task: classes 0-4 (T-shirt/top, Trouser, Pullover, Dress,
                  Coat); train = all of them in the pre-training pool (about 25,000),
                  test = all of them in t10k (5,000).
    fmnist-5to9   downstream: classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot),
                  never seen in pre-training, relabelled 0-4; train from the held-out
                  pool (up to about 5,000), test from t10k (up to 5,000).
    digits        downstream: scikit-learn's load_digits (1,797 handwritten digits,
                  8x8, 17 grey levels), upsampled to 28x28 by a fixed bilinear resize
                  (half-pixel centres); a seeded stratified split, test taken first.
    fmnist-inv    downstream with a domain shift: all 10 Fashion-MNIST classes with
                  inverted contrast (255 - pixel: dark object on a light background),
                  train from the held-out pool (up to 10,000), test from t10k (up to
                  10,000). Five of its classes are the source classes, but no image of
                  its training set was seen in pre-training, and the inversion makes the
                  input distribution unlike the source's.
    fmnist-5to9-rgb128, digits-rgb128, fmnist-inv-rgb128
                  the same tasks (same seeded rows) at 3x128x128 RGB for the bundled
                  ImageNet int8 models, encoded trunc(pixel - 127.5) / 127.5; defaults
                  500 train / 250 test (a sample is 192 KiB in float32). See
                  `load_rgb128`.

Defaults: 1,000 training and 500 test samples per downstream task (on-device epochs are
slow); pass n_train / n_test to take more (up to the sizes above). Subsets are
class-balanced and drawn with the task seed, so seed s gives the same split every time.
"""
from __future__ import annotations

import functools
import gzip
from pathlib import Path

import numpy as np

from medyate.errors import MedyateError

from .task import MEAN, STD, Task, validate

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
POOL_SEED = 20251023           # fixes the pre-training / held-out split of the train file
N_HELD_OUT = 10_000
SOURCE_CLASSES = (0, 1, 2, 3, 4)
DEFAULT_N_TRAIN = 1000
DEFAULT_N_TEST = 500

SOURCE_TASK = "fmnist-0to4"
BUILTIN_TASKS = ("fmnist-5to9", "digits", "fmnist-inv")


# ---------------------------------------------------------------- raw data

def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise MedyateError(f"cannot read Fashion-MNIST file {path}: {e}") from e
    # idx header: 2 zero bytes, dtype code (0x08 = uint8), ndim, then ndim big-endian u32
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise MedyateError(f"{path} is not an uint8 idx file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise MedyateError(f"{path} is truncated: header says {dims}, found {data.size} bytes")
    return data.reshape(dims)


@functools.lru_cache(maxsize=1)
def fashion_mnist(root: str | None = None):
    """(x_train [60000,28,28] uint8, y_train, x_test [10000,28,28], y_test)."""
    d = Path(root) if root else FMNIST_DIR
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    missing = [n for n in names if not (d / n).is_file()]
    if missing:
        raise MedyateError(
            f"Fashion-MNIST not found in {d} (missing {', '.join(missing)}); install the "
            f"Debian package: sudo apt-get install dataset-fashion-mnist")
    xtr, ytr, xte, yte = (_read_idx(d / n) for n in names)
    return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)


def _pools():
    """Indices into the train file: (pre-training pool, held-out pool)."""
    perm = np.random.default_rng(POOL_SEED).permutation(60_000)
    return np.sort(perm[N_HELD_OUT:]), np.sort(perm[:N_HELD_OUT])


@functools.lru_cache(maxsize=1)
def digits_28():
    """sklearn's load_digits upsampled to [1797, 28, 28] float32 in [0, 1], labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise MedyateError("the 'digits' task needs scikit-learn: pip install scikit-learn "
                           "(or pip install 'medyate[data]')") from e
    d = load_digits()
    img = d.images.astype(np.float64) / 16.0
    r = bilinear_matrix(8, 28)
    up = np.einsum("ij,njk,lk->nil", r, img, r)
    return np.clip(up, 0.0, 1.0).astype(np.float32), d.target.astype(np.int64)


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] bilinear interpolation with half-pixel centres (the same as
    torch's interpolate(mode='bilinear', align_corners=False) along one axis)."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = (o + 0.5) * n_in / n_out - 0.5
        src = min(max(src, 0.0), n_in - 1)
        i0 = int(np.floor(src))
        i1 = min(i0 + 1, n_in - 1)
        w = src - i0
        m[o, i0] += 1 - w
        m[o, i1] += w
    return m


# ---------------------------------------------------------------- selection

def _balanced(labels: np.ndarray, n: int | None, rng: np.random.Generator,
              what: str) -> np.ndarray:
    """Indices of a class-balanced random subset of size n (all when n is None), in a
    random order. Classes get n // k samples each, the first n % k classes one more;
    a class that runs short gives its remainder to the others."""
    idx = rng.permutation(len(labels))
    if n is None:
        return idx
    if n <= 0:
        raise MedyateError(f"{what}: asked for {n} samples; the number must be positive")
    if n > len(labels):
        raise MedyateError(f"{what}: asked for {n} samples but only {len(labels)} are "
                           f"available")
    # rank of each sample within its class, in the random order: take rank 0 of every
    # class, then rank 1, ... (ties broken by the random order) until n are taken
    lab = labels[idx]
    rank = np.zeros(len(idx), dtype=np.int64)
    for c in np.unique(lab):
        where = np.flatnonzero(lab == c)
        rank[where] = np.arange(len(where))
    order = np.lexsort((np.arange(len(idx)), rank))
    chosen = idx[order[:n]]
    return chosen[rng.permutation(n)]


def _norm(x_unit: np.ndarray) -> np.ndarray:
    """[N, H, W] in [0, 1] -> [N, 1, H, W] normalised float32."""
    return ((x_unit.astype(np.float32) - MEAN) / STD)[:, None, :, :]


def _fmnist_task(name, classes, train_pool, transform, seed, n_train, n_test,
                 default_train, default_test, notes):
    xtr, ytr, xte, yte = fashion_mnist()
    pre, held = _pools()
    pool = pre if train_pool == "pretrain" else held
    classes = np.asarray(classes)
    remap = np.full(10, -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))

    tr = pool[np.isin(ytr[pool], classes)]
    te = np.flatnonzero(np.isin(yte, classes))
    rng = np.random.default_rng(seed)
    n_train = default_train if n_train is None else n_train
    n_test = default_test if n_test is None else n_test
    tr = tr[_balanced(ytr[tr], n_train, rng, f"task {name} train split")]
    te = te[_balanced(yte[te], n_test, rng, f"task {name} test split")]

    def prep(x):
        return _norm(transform(x.astype(np.float32) / 255.0))

    task = Task(name=name, x_train=prep(xtr[tr]), y_train=remap[ytr[tr]],
                x_test=prep(xte[te]), y_test=remap[yte[te]],
                classes=[FMNIST_CLASSES[c] for c in classes],
                source=f"Fashion-MNIST ({FMNIST_DIR}, Debian dataset-fashion-mnist)",
                notes=notes)
    # which file rows were used, for audits (train rows index the train file, test
    # rows the t10k file)
    task.train_index, task.test_index = tr, te
    return validate(task)


# ---------------------------------------------------------------- public

def source_task(seed: int = 0, n_train: int | None = None,
                n_test: int | None = None) -> Task:
    """The pre-training task (fmnist-0to4). By default every sample: about 25,000 train
    (the pre-training pool's classes 0-4) and 5,000 test (t10k classes 0-4)."""
    return _fmnist_task(
        SOURCE_TASK, SOURCE_CLASSES, "pretrain", lambda x: x, seed, n_train, n_test,
        None, None,
        "source task of the bundled models: classes 0-4, pre-training pool of the "
        "train file; test = t10k classes 0-4")


def load_builtin(name: str, seed: int = 0, n_train: int | None = None,
                 n_test: int | None = None) -> Task:
    if name == SOURCE_TASK:
        return source_task(seed, n_train, n_test)
    if name == "fmnist-5to9":
        return _fmnist_task(
            name, (5, 6, 7, 8, 9), "held-out", lambda x: x, seed, n_train, n_test,
            DEFAULT_N_TRAIN, DEFAULT_N_TEST,
            "classes 5-9 relabelled 0-4, unseen in pre-training; train from the held-out "
            "pool, test from t10k")
    if name == "fmnist-inv":
        return _fmnist_task(
            name, tuple(range(10)), "held-out", lambda x: 1.0 - x, seed, n_train, n_test,
            DEFAULT_N_TRAIN, DEFAULT_N_TEST,
            "all 10 classes, inverted contrast (1 - pixel); train from the held-out pool "
            "(never seen in pre-training), test from t10k")
    if name == "digits":
        return _digits(seed, n_train, n_test)
    if name in RGB128_TASKS:
        return load_rgb128(name, seed, n_train, n_test)
    names = (SOURCE_TASK,) + BUILTIN_TASKS + RGB128_TASKS
    raise MedyateError(f"unknown task {name!r}: builtin tasks are "
                       f"{', '.join(names)}, or give an .npz file "
                       f"or a folder with train/ and test/ sub-folders")


def _digits(seed, n_train, n_test) -> Task:
    x, y = digits_28()
    rng = np.random.default_rng(seed)
    n_test = DEFAULT_N_TEST if n_test is None else n_test
    te = _balanced(y, n_test, rng, "task digits test split")
    rest = np.setdiff1d(np.arange(len(y)), te)
    n_train = DEFAULT_N_TRAIN if n_train is None else n_train
    tr = rest[_balanced(y[rest], n_train, rng,
                        f"task digits train split (after {n_test} test samples)")]
    task = Task(name="digits", x_train=_norm(x[tr]), y_train=y[tr],
                x_test=_norm(x[te]), y_test=y[te],
                classes=[str(i) for i in range(10)],
                source="scikit-learn load_digits (UCI optical handwritten digits)",
                notes="8x8 images, 0-16 scaled to [0, 1], bilinear resize to 28x28; "
                      "seeded stratified split, test drawn first")
    task.train_index, task.test_index = tr, te
    return validate(task)


# ---------------------------------------------------------------- 3x128x128 tasks

# Downstream tasks for the ImageNet int8 models (models/mcunet-5fps.onnx etc., RGB
# 3x128x128): the builtin tasks at that size, same seeded splits (the same rows of the
# same files as the 28x28 task of the same name and seed). Each 28x28 (or 8x8) grayscale
# image is resized bilinearly (half-pixel centres) to 128x128, rounded to 8-bit pixels,
# copied to R, G and B, and encoded as those models expect: trunc(pixel - 127.5) / 127.5
# (TTE's "MCU transform"; see models/README.md). A sample is 192 KiB in float32, hence
# the smaller default splits.
RGB128_TASKS = ("fmnist-5to9-rgb128", "digits-rgb128", "fmnist-inv-rgb128")
RGB128_SIZE = 128
RGB128_N_TRAIN = 500
RGB128_N_TEST = 250


def _rgb128(pixels_u8_or_unit: np.ndarray, scale: float) -> np.ndarray:
    """[N, h, w] grayscale (times `scale` gives 0..255) -> [N, 3, 128, 128] float32."""
    h = pixels_u8_or_unit.shape[1]
    m = bilinear_matrix(h, RGB128_SIZE).astype(np.float32)
    out = np.empty((len(pixels_u8_or_unit), 3, RGB128_SIZE, RGB128_SIZE), np.float32)
    for i in range(0, len(out), 256):            # bounded temporaries
        x = pixels_u8_or_unit[i:i + 256].astype(np.float32) * np.float32(scale)
        up = np.einsum("ij,njk,lk->nil", m, x, m)
        px = np.clip(np.round(up), 0, 255)
        out[i:i + 256] = (np.trunc(px - 127.5) / 127.5)[:, None]
    return out


def load_rgb128(name: str, seed: int = 0, n_train: int | None = None,
                n_test: int | None = None) -> Task:
    base = name[: -len("-rgb128")]
    n_train = RGB128_N_TRAIN if n_train is None else n_train
    n_test = RGB128_N_TEST if n_test is None else n_test
    small = load_builtin(base, seed, n_train, n_test)       # the seeded split
    if base == "digits":
        from sklearn.datasets import load_digits
        raw_tr = raw_te = load_digits().images
        scale = 255.0 / 16.0
    else:
        xtr, _, xte, _ = fashion_mnist()
        raw_tr, raw_te, scale = xtr, xte, 1.0
        if base == "fmnist-inv":      # the 28x28 task's inversion, on 8-bit pixels
            raw_tr, raw_te = 255 - raw_tr, 255 - raw_te
    task = Task(name=name, x_train=_rgb128(raw_tr[small.train_index], scale),
                y_train=small.y_train, x_test=_rgb128(raw_te[small.test_index], scale),
                y_test=small.y_test, classes=list(small.classes), source=small.source,
                notes=f"{base} ({small.notes}) at 3x128x128: bilinear resize, 8-bit "
                      "pixels copied to RGB, trunc(pixel - 127.5) / 127.5",
                mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    task.train_index, task.test_index = small.train_index, small.test_index
    return validate(task)
