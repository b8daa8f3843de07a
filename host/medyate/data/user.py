"""User data: an .npz file or a folder of images, one sub-folder per class.

.npz
    x_train, y_train, x_test, y_test. x is NCHW, float32 or uint8. uint8 pixels are
    scaled to [0, 1] and normalised with the file's `mean` and `std` arrays (one value,
    or one per channel) or, without them, with the bundled models' MEAN and STD.
    float32 data is used as it is (already normalised) unless the file has `mean` and
    `std`, in which case (x - mean) / std is applied. An optional `classes` array names
    the classes; without it there are max(label) + 1 classes.
folder
    <folder>/train/<class>/<image> and <folder>/test/<class>/<image>. Classes are the
    sorted sub-folder names of train/ (test/ may lack some but may not add any).
    PNG, JPEG, BMP, GIF need Pillow; PGM/PPM (P2, P3, P5, P6) are read without it.
    Images are converted to `channels` channels (1: grey, 3: RGB) and, if their size
    differs from `size`, resized bilinearly (this needs Pillow), then scaled to [0, 1]
    and normalised with MEAN and STD.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medyate.errors import MedyateError

from .task import MEAN, STD, Task, validate

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".pnm"}
NETPBM_SUFFIXES = {".pgm", ".ppm", ".pnm"}


# ---------------------------------------------------------------- npz

def _per_channel(v, c: int, what: str, path) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    if v.size == 1:
        v = np.repeat(v, c)
    if v.size != c:
        raise MedyateError(f"{path}: '{what}' has {v.size} values but the images have "
                           f"{c} channels; give one value or one per channel")
    if what == "std" and np.any(v <= 0):
        raise MedyateError(f"{path}: 'std' must be positive, got {v.tolist()}")
    return v.reshape(1, c, 1, 1)


def load_npz(path, name: str | None = None) -> Task:
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile, OSError, ValueError: all mean unreadable
        raise MedyateError(f"cannot read {path} as an .npz file: {e}") from e
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise MedyateError(f"{path}: missing array(s) {', '.join(missing)}; an .npz task "
                           f"needs x_train, y_train, x_test, y_test (found: "
                           f"{', '.join(sorted(arrays)) or 'none'})")
    has_norm = "mean" in arrays or "std" in arrays
    if has_norm and not ("mean" in arrays and "std" in arrays):
        raise MedyateError(f"{path}: give both 'mean' and 'std' or neither")
    xs = {}
    mean = std = None
    for split in ("train", "test"):
        x = arrays[f"x_{split}"]
        if x.ndim != 4:
            raise MedyateError(f"{path}: x_{split} has shape {x.shape}; expected NCHW "
                               f"(samples, channels, height, width)")
        c = x.shape[1]
        if x.dtype == np.uint8:
            m = _per_channel(arrays["mean"], c, "mean", path) if has_norm else \
                np.full((1, c, 1, 1), MEAN, np.float32)
            s = _per_channel(arrays["std"], c, "std", path) if has_norm else \
                np.full((1, c, 1, 1), STD, np.float32)
            x = (x.astype(np.float32) / 255.0 - m) / s
        elif np.issubdtype(x.dtype, np.floating):
            m = s = None
            if has_norm:
                m = _per_channel(arrays["mean"], c, "mean", path)
                s = _per_channel(arrays["std"], c, "std", path)
                x = (x.astype(np.float32) - m) / s
            x = x.astype(np.float32)
        else:
            raise MedyateError(f"{path}: x_{split} has dtype {x.dtype}; use float32 "
                               f"(normalised) or uint8 (0-255 pixels)")
        if m is not None:
            mean, std = m, s
        xs[split] = x
    ys = {s: arrays[f"y_{s}"] for s in ("train", "test")}
    for s, y in ys.items():
        if y.size and not np.issubdtype(y.dtype, np.number):
            raise MedyateError(f"{path}: y_{s} must hold integer labels (dtype {y.dtype})")
    if "classes" in arrays:
        classes = [str(c) for c in arrays["classes"].reshape(-1)]
    else:
        top = max((int(np.max(y)) for y in ys.values() if y.size), default=-1)
        classes = [str(i) for i in range(top + 1)]
    if mean is None:
        mean_t, std_t = (MEAN,), (STD,)
        if any(x.dtype != np.uint8 for x in (arrays["x_train"], arrays["x_test"])) \
                and not has_norm:
            mean_t, std_t = (), ()          # float data, normalisation unknown
    else:
        mean_t, std_t = tuple(mean.reshape(-1).tolist()), tuple(std.reshape(-1).tolist())
    task = Task(name=name or path.stem, x_train=xs["train"], y_train=ys["train"],
                x_test=xs["test"], y_test=ys["test"], classes=classes,
                source=str(path), mean=mean_t, std=std_t)
    return validate(task)


# ---------------------------------------------------------------- images

def _netpbm_tokens(data: bytes, n: int, pos: int):
    """n whitespace-separated header integers from pos, skipping # comments."""
    out = []
    while len(out) < n:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if pos < len(data) and data[pos:pos + 1] == b"#":
            while pos < len(data) and data[pos:pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace() \
                and data[pos:pos + 1] != b"#":
            pos += 1
        if start == pos:
            raise ValueError("truncated header")
        tok = data[start:pos]
        if not tok.isdigit():
            # width, height and maxval are unsigned decimal numbers
            raise ValueError(f"header field {tok.decode(errors='replace')!r} is not a "
                             "non-negative integer")
        out.append(int(tok))
    return out, pos


def read_netpbm(path) -> np.ndarray:
    """A PGM (P2/P5) or PPM (P3/P6) image as uint8 [H, W] or [H, W, 3], scaled to 0-255."""
    path = Path(path)
    try:
        data = path.read_bytes()
        magic = data[:2]
        if magic not in (b"P2", b"P5", b"P3", b"P6"):
            raise ValueError(f"not a PGM/PPM file (magic {magic!r})")
        (w, h, maxval), pos = _netpbm_tokens(data, 3, 2)
        if not 0 < maxval < 65536:
            raise ValueError(f"bad maxval {maxval}")
        for name, v in (("width", w), ("height", h)):
            if not 0 < v <= 65535:
                raise ValueError(f"{name} {v} is not a positive image size (at most 65535)")
        c = 3 if magic in (b"P3", b"P6") else 1
        n = w * h * c
        if magic in (b"P5", b"P6"):
            pos += 1                                      # the single whitespace byte
            dt = np.dtype(">u2") if maxval > 255 else np.dtype(np.uint8)
            raw = np.frombuffer(data, dtype=dt, count=n, offset=pos)
        else:
            raw = np.array(data[pos:].split()[:n], dtype=np.int64)
            if raw.size != n:
                raise ValueError("truncated pixel data")
        if raw.size and (raw.min() < 0 or raw.max() > maxval):
            bad = int(raw.max()) if raw.max() > maxval else int(raw.min())
            raise ValueError(f"pixel value {bad} outside 0..{maxval} (the header's maxval)")
        img = np.round(raw.astype(np.float64) * 255.0 / maxval).astype(np.uint8)
    except (OSError, ValueError) as e:
        raise MedyateError(f"cannot read image {path}: {e}") from e
    return img.reshape(h, w, c) if c == 3 else img.reshape(h, w)


def _read_image(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """[C, H, W] float32 in [0, 1]."""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if path.suffix.lower() in NETPBM_SUFFIXES:
        # read without Pillow, so that the result does not depend on it being installed
        img = read_netpbm(path)
        if img.ndim == 3 and channels == 1:
            img = np.round(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
        elif img.ndim == 2 and channels == 3:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.shape[:2] != tuple(size):
            if Image is None:
                raise MedyateError(f"{path} is {img.shape[1]}x{img.shape[0]} pixels, not "
                                   f"{size[1]}x{size[0]}; resizing needs Pillow "
                                   f"(pip install pillow)")
            img = np.asarray(Image.fromarray(img).resize((size[1], size[0]),
                                                         Image.BILINEAR))
    elif Image is None:
        raise MedyateError(f"cannot read {path}: reading {path.suffix} images needs "
                           f"Pillow (pip install pillow); PGM/PPM files are read "
                           f"without it")
    else:
        try:
            with Image.open(path) as im:
                im = im.convert("L" if channels == 1 else "RGB")
                if im.size != (size[1], size[0]):
                    im = im.resize((size[1], size[0]), Image.BILINEAR)
                img = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise MedyateError(f"cannot read image {path}: {e}") from e
    img = img.astype(np.float32) / 255.0
    return img[None] if img.ndim == 2 else img.transpose(2, 0, 1)


def load_folder(path, name: str | None = None, channels: int = 1,
                size: tuple[int, int] = (28, 28), mean=None, std=None) -> Task:
    """An image folder read at `channels` x `size` (the model's input: grayscale and
    RGB are converted, other sizes resized). `mean` / `std` (one value or one per
    channel) normalise it; by default they are computed per channel on the training
    split, so that no other data set's statistics are applied to the user's images."""
    root = Path(path)
    if channels not in (1, 3):
        raise MedyateError(f"channels must be 1 or 3, not {channels}")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise MedyateError(f"{root}: missing the {split}/ sub-folder; an image-folder "
                               f"task needs train/<class>/<image> and test/<class>/<image>")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise MedyateError(f"{root / 'train'}: no class sub-folders; put the images of "
                           f"each class in train/<class name>/")
    test_classes = sorted(p.name for p in (root / "test").iterdir() if p.is_dir())
    extra = [c for c in test_classes if c not in classes]
    if extra:
        raise MedyateError(f"{root / 'test'}: class folder(s) {', '.join(extra)} have no "
                           f"counterpart in train/ (train classes: {', '.join(classes)})")
    splits = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for label, cname in enumerate(classes):
            d = root / split / cname
            if not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    xs.append(_read_image(f, channels, size))
                    ys.append(label)
        if not xs:
            raise MedyateError(f"{root / split}: the {split} split is empty: no image files "
                               f"({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
        splits[split] = (np.stack(xs), np.asarray(ys, dtype=np.int64))
    if (mean is None) != (std is None):
        raise MedyateError(f"{root}: give both a mean and a std for the normalisation, or neither")
    if mean is None:
        # statistics of the training split only: the test split must not leak into them
        xt = splits["train"][0]
        m = xt.mean(axis=(0, 2, 3)).astype(np.float32)
        sd = xt.std(axis=(0, 2, 3)).astype(np.float32)
        sd = np.where(sd > 1e-6, sd, np.float32(1.0))   # a constant channel: keep it unscaled
    else:
        m = _per_channel(mean, channels, "mean", root).reshape(-1)
        sd = _per_channel(std, channels, "std", root).reshape(-1)
    for split, (x, y) in splits.items():
        x = (x - m.reshape(1, -1, 1, 1)) / sd.reshape(1, -1, 1, 1)
        splits[split] = (x.astype(np.float32), y)
    task = Task(name=name or root.name, x_train=splits["train"][0],
                y_train=splits["train"][1], x_test=splits["test"][0],
                y_test=splits["test"][1], classes=classes, source=str(root),
                mean=tuple(float(v) for v in m), std=tuple(float(v) for v in sd))
    return validate(task)
