"""Tasks for fine-tuning: builtin tasks from real data available offline, user data
(.npz or an image folder), and the bundled pre-trained models.

    load_task(name_or_path, seed=0, n_train=None, n_test=None) -> Task
    source_task(seed=0, n_train=None, n_test=None) -> Task   (the pre-training task)
    check_task(task, input_shape, n_outputs=None)             (raises MedyateError)
    bundled_model(name) -> Path, resolve_model(file or name) -> Path,
    model_summary(path) -> dict

See `builtin` for how the pre-training and downstream splits are defined and `user`
for the user data formats.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medyate.errors import MedyateError

from .builtin import (BUILTIN_TASKS, SOURCE_TASK, bilinear_matrix, load_builtin,
                      source_task, _balanced)
from .models import BUNDLED_MODELS, bundled_model, model_summary, resolve_model
from .task import INPUT_SHAPE, MEAN, STD, Task, check_task, validate
from .user import load_folder, load_npz, read_netpbm

__all__ = [
    "Task", "load_task", "source_task", "check_task", "validate", "load_npz",
    "load_folder", "read_netpbm", "bundled_model", "model_summary", "resolve_model",
    "bilinear_matrix",
    "BUILTIN_TASKS", "SOURCE_TASK", "BUNDLED_MODELS", "MEAN", "STD", "INPUT_SHAPE",
]


def load_task(name_or_path, seed: int = 0, n_train: int | None = None,
              n_test: int | None = None, input_shape=None, mean=None, std=None) -> Task:
    """A builtin task by name (see BUILTIN_TASKS, SOURCE_TASK) or user data: an .npz
    file or a folder with train/ and test/ sub-folders of per-class image folders.

    seed fixes which samples are drawn; n_train / n_test take a class-balanced subset
    (builtin tasks default to 1000 / 500, user data to all of it).
    input_shape (the model's [N,] C, H, W) sets the channels and size an image folder
    is read at (default 1x28x28); mean / std its normalisation (default: per channel,
    from its training split)."""
    s = str(name_or_path)
    if s in BUILTIN_TASKS or s == SOURCE_TASK:
        return load_builtin(s, seed, n_train, n_test)
    p = Path(s)
    if p.is_dir():
        kw = {}
        if input_shape is not None:
            c, h, w = (int(v) for v in tuple(input_shape)[-3:])
            kw = dict(channels=c, size=(h, w))
        task = load_folder(p, mean=mean, std=std, **kw)
    elif p.is_file():
        if p.suffix.lower() != ".npz":
            raise MedyateError(f"{p}: unsupported data file; give an .npz file, a folder "
                               f"with train/ and test/ sub-folders, or a builtin task "
                               f"({', '.join(BUILTIN_TASKS)})")
        task = load_npz(p)
    elif p.suffix or "/" in s or "\\" in s:
        raise MedyateError(f"data not found: {p} does not exist")
    else:
        return load_builtin(s, seed, n_train, n_test)   # raises, listing the names
    if n_train is not None or n_test is not None:
        rng = np.random.default_rng(seed)
        if n_train is not None:
            i = _balanced(task.y_train, n_train, rng, f"task {task.name} train split")
            task.x_train, task.y_train = task.x_train[i], task.y_train[i]
        if n_test is not None:
            i = _balanced(task.y_test, n_test, rng, f"task {task.name} test split")
            task.x_test, task.y_test = task.x_test[i], task.y_test[i]
    return task
