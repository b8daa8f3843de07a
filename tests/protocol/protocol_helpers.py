"""Shared by the protocol tests: a learnable toy task for the fixture model,
a small scripted training session, the fixtures' model_config.h."""
from pathlib import Path

import numpy as np

from medyate.protocol import Device


def learnable_data(seed=0, n_train=96, n_test=32):
    """3 classes told apart by which quadrant of the 4x4 image is bright."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.integers(0, 3, n)
        x = rng.normal(0, 0.3, (n, 2, 4, 4)).astype(np.float32)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, c % 2, 2 * r:2 * r + 2, 2 * q:2 * q + 2] += 1.5
        return x, y
    return (*make(n_train), *make(n_test))

SELECTIONS = [[(0, 0), (1, 0), (1, 2)], [(0, 1), (1, 1), (1, 3)], [(1, 0), (1, 1), (1, 2), (1, 3)]]


def session(dev: Device):
    """A small training session; returns everything it observed."""
    out = {"stats": []}
    info = dev.info()
    out["layers"] = [(l.channels, l.slice_size) for l in info.layers]
    dev.write_weights(1, "bias", [0.1, 0.0, -0.1])
    for ep, sel in enumerate(SELECTIONS * 2):
        dev.set_selection(sel)
        s = dev.run_epoch("train", batch=8, lr=0.3, seed=100 + ep)
        out["stats"].append((s.loss_sum, s.correct, s.seen, s.steps, s.channel_stats.tolist()))
    e = dev.evaluate("test")
    out["eval"] = (e.loss_sum, e.correct, e.count)
    out["weights"] = dev.read_all_weights()
    return out


HERE = Path(__file__).resolve().parent
# Input shape (h, w, c) of each fixture model, for its model_config.h.
FIXTURES = {"fixture_model.c": (4, 4, 2), "fixture_big_model.c": (16, 16, 3)}


def model_config(out_dir: Path, fixture: str) -> Path:
    """A directory holding the fixture's model_config.h (the input shape and
    its bytes, fp32 fixtures, are all the device code reads from it)."""
    h, w, c = FIXTURES[fixture]
    d = out_dir / (Path(fixture).stem + "-config")
    d.mkdir(exist_ok=True)
    (d / "model_config.h").write_text(
        "#ifndef MDY_MODEL_CONFIG_H\n#define MDY_MODEL_CONFIG_H\n"
        f"#define MDY_MODEL_INPUT_H {h}\n#define MDY_MODEL_INPUT_W {w}\n"
        f"#define MDY_MODEL_INPUT_C {c}\n#define MDY_MODEL_SAMPLE_BUFFER_BYTES {4 * h * w * c}u\n"
        "#endif\n")
    return d
