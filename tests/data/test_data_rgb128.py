"""3x128x128 downstream tasks for the bundled ImageNet int8 models."""
from __future__ import annotations

import os

import numpy as np
import pytest

from medyate.data import check_task, load_task
from medyate.errors import MedyateError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("name, base", [("fmnist-5to9-rgb128", "fmnist-5to9"),
                                        ("digits-rgb128", "digits"),
                                        ("fmnist-inv-rgb128", "fmnist-inv")])
def test_rgb128_task_is_the_builtin_task_resized(name, base):
    t = load_task(name, seed=1, n_train=20, n_test=10)
    small = load_task(base, seed=1, n_train=20, n_test=10)
    assert t.x_train.shape == (20, 3, 128, 128) and t.x_test.shape == (10, 3, 128, 128)
    assert np.array_equal(t.train_index, small.train_index)
    assert np.array_equal(t.y_train, small.y_train) and t.classes == small.classes
    # the models' input encoding: integer codes trunc(pixel - 127.5) in [-127, 127], / 127.5
    codes = t.x_train * 127.5
    assert np.allclose(codes, np.round(codes), atol=1e-4)
    assert codes.min() >= -127 - 1e-4 and codes.max() <= 127 + 1e-4
    assert np.array_equal(t.x_train[:, 0], t.x_train[:, 1])
    assert np.array_equal(t.x_train[:, 0], t.x_train[:, 2])
    assert t.x_train.std() > 0.1
    # seeded and fixed
    again = load_task(name, seed=1, n_train=20, n_test=10)
    assert np.array_equal(again.x_test, t.x_test)
    assert not np.array_equal(load_task(name, seed=2, n_train=20, n_test=10).train_index,
                              t.train_index)


def test_inverted_rgb128_task_is_the_plain_images_inverted():
    inv = load_task("fmnist-inv-rgb128", seed=0, n_train=8, n_test=4)
    # the same rows as the 28x28 task; a light background: the corner pixel is 255
    # (code trunc(255 - 127.5) = 127) where Fashion-MNIST's is 0 (code -127)
    assert np.allclose(inv.x_train[:, :, 0, 0] * 127.5, 127, atol=1e-4)
    from medyate.data.builtin import _rgb128, fashion_mnist
    xtr, _, _, _ = fashion_mnist()
    plain = _rgb128(xtr[inv.train_index], 1.0)
    assert np.allclose(plain[:, :, 0, 0] * 127.5, -127, atol=1e-4)
    assert np.array_equal(inv.x_train, _rgb128(255 - xtr[inv.train_index], 1.0))


def test_rgb128_task_fits_the_imagenet_models():
    import onnxruntime as ort
    t = load_task("fmnist-5to9-rgb128", n_train=16, n_test=8)
    check_task(t, (1, 3, 128, 128), 1000)
    s = ort.InferenceSession(os.path.join(ROOT, "models", "mcunet-5fps.onnx"),
                             providers=["CPUExecutionProvider"])
    assert s.run(None, {"input": t.x_test})[0].shape == (8, 1000)
    with pytest.raises(MedyateError, match="digits-rgb128"):
        load_task("nosuch-task")
