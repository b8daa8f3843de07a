"""What a plan records of the data set it was made on (plan.json "data"), and
the comparison a later command makes with the data it is given.

    data_record(task, given, data_seed) -> dict   (the "data" of plan.json)
    differences(record, task, given) -> [str]     (empty: the same data)
    data_sha256(task) -> str                      (the arrays as loaded)

The record (its schema: `planner.plan.DataRecord`) names the data (a builtin task's name, or the absolute path of
the .npz file or image folder), its counts, classes and sample shape, the
normalisation applied to it, and a hash of the arrays as loaded (after the
class-balanced subset and the normalisation). The normalisation of an image
folder is computed from its training split; `medyate train` and `build` read
the folder again with the plan's, and `medyate infer --plan` applies it to
uint8 pixels, so that every command feeds the model what the plan saw."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def data_sha256(task) -> str:
    """SHA-256 of the task's four arrays as loaded, with their dtypes and shapes."""
    h = hashlib.sha256()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        a = np.ascontiguousarray(getattr(task, name))
        h.update(f"{name} {a.dtype.str} {a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def source_of(given) -> str:
    """How --data is recorded: a path that exists made absolute, a name as it is."""
    p = Path(str(given))
    return str(p.resolve()) if p.exists() else str(given)


def data_record(task, given, data_seed: int = 0) -> dict:
    """plan.json's "data" (its schema: planner.plan.DataRecord)."""
    return {"source": source_of(given), "sha256": data_sha256(task),
            "n_train": len(task.y_train), "n_test": len(task.y_test),
            "data_seed": int(data_seed), "classes": [str(c) for c in task.classes],
            "sample_shape": [int(d) for d in task.x_train.shape[1:]],
            "mean": [float(v) for v in task.mean], "std": [float(v) for v in task.std]}


def normalisation(record: dict | None):
    """(mean, std) the plan's data was normalised with, or None (no record, or
    float data used as given)."""
    if not record or not record.get("mean"):
        return None
    return list(record["mean"]), list(record["std"])


def differences(record: dict, task, given) -> list[str]:
    """How the data `task` (loaded from --data `given`) differs from the
    plan's: empty when it is the same data."""
    if data_sha256(task) == record["sha256"]:
        return []
    out = []
    src = source_of(given)
    if src != record["source"]:
        out.append(f"data {src} (the plan's: {record['source']})")
    counts = (len(task.y_train), len(task.y_test))
    if counts != (record["n_train"], record["n_test"]):
        out.append(f"{counts[0]} train / {counts[1]} test samples (the plan's: "
                   f"{record['n_train']} / {record['n_test']})")
    if list(task.classes) != record["classes"]:
        out.append(f"classes {', '.join(task.classes)} (the plan's: "
                   f"{', '.join(record['classes'])})")
    mean, std = [float(v) for v in task.mean], [float(v) for v in task.std]
    if (mean, std) != (record["mean"], record["std"]):
        out.append(f"normalisation mean {mean} std {std} (the plan's: mean {record['mean']} "
                   f"std {record['std']})")
    if not out:
        out.append("other samples (the same counts and classes, another content hash)")
    return out
