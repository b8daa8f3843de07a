"""The `Task` container and the checks every task passes, builtin or user data."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medyate.errors import MedyateError

# Normalisation the bundled models were pre-trained with: pixels scaled to [0, 1],
# then (x - MEAN) / STD. These are the Fashion-MNIST training-set mean and std; every
# builtin task uses the same constants so that its inputs look like the source task's.
MEAN = 0.2860
STD = 0.3530

# The bundled models' input, NCHW with batch 1.
INPUT_SHAPE = (1, 1, 28, 28)


@dataclass
class Task:
    """A classification task: train and test split, NCHW float32, int64 labels."""
    name: str
    x_train: np.ndarray          # [N, C, H, W] float32, normalised
    y_train: np.ndarray          # [N] int64 in [0, len(classes))
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    source: str = ""             # where the data came from, one line
    notes: str = ""              # how it was derived (splits, transforms)
    mean: tuple[float, ...] = field(default=(MEAN,))
    std: tuple[float, ...] = field(default=(STD,))
    # rows of the original data set each split was drawn from (builtin tasks), for audits
    train_index: np.ndarray | None = field(default=None, repr=False)
    test_index: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape with batch 1, as the model's input: (1, C, H, W)."""
        return (1,) + tuple(self.x_train.shape[1:])

    def describe(self) -> str:
        def counts(y):
            c = np.bincount(y, minlength=self.n_classes)
            return f"{c.min()}-{c.max()} per class" if len(c) else "empty"
        lines = [
            f"task {self.name}: {self.n_classes} classes, input {self.input_shape} float32",
            f"  train {len(self.y_train)} samples ({counts(self.y_train)}), "
            f"test {len(self.y_test)} samples ({counts(self.y_test)})",
            f"  classes: {', '.join(self.classes)}",
            ("  normalisation: (x - {}) / {} on [0, 1] pixels".format(
                list(self.mean), list(self.std)) if self.mean
             else "  normalisation: none applied (float data used as given)"),
        ]
        if self.source:
            lines.append(f"  source: {self.source}")
        if self.notes:
            lines.append(f"  notes: {self.notes}")
        return "\n".join(lines)


def validate(task: Task) -> Task:
    """Check shapes, dtypes, labels and emptiness; return the task with canonical dtypes.

    Raises MedyateError naming the task and what is wrong."""
    where = f"task {task.name}"
    for split in ("train", "test"):
        x = getattr(task, f"x_{split}")
        y = getattr(task, f"y_{split}")
        if x is None or y is None:
            raise MedyateError(f"{where}: the {split} split is missing x_{split} or y_{split}")
        x = np.asarray(x)
        y = np.asarray(y)
        if x.ndim != 4:
            raise MedyateError(
                f"{where}: x_{split} has shape {x.shape}; expected 4 dimensions NCHW "
                f"(samples, channels, height, width)")
        if len(x) == 0:
            raise MedyateError(f"{where}: the {split} split is empty (x_{split} has 0 samples)")
        if y.ndim != 1 or len(y) != len(x):
            raise MedyateError(
                f"{where}: y_{split} has shape {y.shape} but x_{split} has {len(x)} samples; "
                f"expected one integer label per sample")
        if not np.issubdtype(y.dtype, np.integer):
            if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y))
                    and np.all(y == np.round(y))):
                raise MedyateError(f"{where}: y_{split} must hold integer class labels "
                                   f"(dtype is {y.dtype})")
        y = y.astype(np.int64)
        if y.min() < 0 or y.max() >= len(task.classes):
            bad = int(y.min()) if y.min() < 0 else int(y.max())
            raise MedyateError(
                f"{where}: label {bad} in y_{split} is out of range: the task has "
                f"{len(task.classes)} classes, labels must be in 0..{len(task.classes) - 1}")
        x = x.astype(np.float32, copy=False)
        if not np.all(np.isfinite(x)):
            raise MedyateError(f"{where}: x_{split} holds NaN or infinite values")
        setattr(task, f"x_{split}", np.ascontiguousarray(x))
        setattr(task, f"y_{split}", y)
    if task.x_train.shape[1:] != task.x_test.shape[1:]:
        raise MedyateError(
            f"{where}: train samples have shape {task.x_train.shape[1:]} but test samples "
            f"have {task.x_test.shape[1:]}; both splits need the same CHW shape")
    # One class leaves nothing to learn (the loss is 0 for any weights) and a
    # constant 100 % accuracy: a wrong file, not a task.
    seen = np.unique(task.y_train)
    if len(seen) < 2:
        raise MedyateError(f"{where}: y_train holds only class {int(seen[0])}; a task needs "
                           f"at least 2 classes in its training labels")
    return task


def check_task(task: Task, input_shape, n_outputs: int | None = None) -> None:
    """Check that `task` fits a model with `input_shape` ((1, C, H, W), (C, H, W) or with
    a symbolic batch) and, when given, `n_outputs` classifier outputs.

    Raises MedyateError with both shapes when they differ."""
    want = tuple(int(d) for d in tuple(input_shape)[-3:])
    got = tuple(task.x_train.shape[1:])
    if got != want:
        raise MedyateError(
            f"task {task.name}: samples have shape CHW {got} but the model's input is "
            f"CHW {want} (input {tuple(input_shape)}); resize or re-export the data")
    if n_outputs is not None and task.n_classes > n_outputs:
        raise MedyateError(
            f"task {task.name} has {task.n_classes} classes but the model's classifier has "
            f"only {n_outputs} outputs: labels {n_outputs}..{task.n_classes - 1} are out of "
            f"range for it")
