"""Arguments and loading shared by several subcommands."""
from __future__ import annotations

import sys

from ..data.builtin import BUILTIN_TASKS, RGB128_TASKS
from ..data.models import BUNDLED_MODELS, resolve_model
from ..errors import MedyateError

MODEL_HELP = f"ONNX model file, or a bundled model: {', '.join(BUNDLED_MODELS)}"
DATA_HELP = (f"a builtin task ({', '.join(BUILTIN_TASKS + RGB128_TASKS)}), an .npz with "
             "x_train, y_train, x_test, y_test, or a folder of class sub-folders")


def load_model_and_data(args, plan=None):
    """(model path, graph, task or None, head record or None) of a command's
    arguments (`session.model.load_for_task`): without `plan` (`medyate plan`) the
    graph gets a new head when its outputs differ from the task's classes, seeded
    by --seed; with a plan, the head the plan records. With a plan that records
    its data set, an image folder is normalised as the plan's was, and data other
    than the plan's is warned about (data.record)."""
    from ..data import load_task
    from ..data.record import differences, normalisation
    from ..session.model import input_shape_of, load_for_task
    from .profile import parse_shape
    resolve_model(args.model)     # a missing model is said before the data is read
    shape = parse_shape(args.input_shape) if getattr(args, "input_shape", None) else None
    if shape is None and plan is not None and plan.input_shape:
        shape = tuple(plan.input_shape)          # given once, when the plan was made
    task = None
    record = plan.data if plan is not None else None
    if getattr(args, "data", None):
        mean, std = normalisation(record) or (None, None)
        kw = dict(seed=args.data_seed, n_train=args.n_train, n_test=args.n_test, mean=mean,
                  std=std)
        try:
            model_shape = input_shape_of(args.model, shape)
        except MedyateError as e:
            if shape is not None or "dynamic dimension" not in str(e) or _is_folder(args.data):
                raise
            # dynamic H and W: the data's own shape (an .npz or a builtin task)
            task = load_task(args.data, **kw)
            shape = (1,) + tuple(task.x_train.shape[1:])
            print(f"input shape {shape}: the model's is dynamic, taken from the data",
                  flush=True)
        else:
            # image folders are read at the model's channels and size
            task = load_task(args.data, input_shape=model_shape, **kw)
        if record is not None:
            diff = differences(record, task, args.data)
            if diff:
                print("warning: this is not the data the plan was made on: "
                      + "; ".join(diff) + ". Its layer ranking, budget and learning rate "
                      "were chosen for that data; `medyate plan` on this data makes a plan "
                      "for it", file=sys.stderr, flush=True)
    path, graph, head = load_for_task(args.model, task=task, plan=plan,
                                      seed=getattr(args, "seed", 0), input_shape=shape,
                                      log=lambda s: print(s, flush=True))
    if task is not None:
        print(describe_loaded(task, graph), flush=True)
    # recorded in a plan made from these arguments (commands/plan.py)
    args.resolved_input_shape = list(graph.shapes[graph.input])
    return path, graph, task, head


def _is_folder(data) -> bool:
    from pathlib import Path
    return Path(str(data)).is_dir()


def describe_loaded(task, graph) -> str:
    """What was loaded, before any training: the task (classes, counts per split,
    shape, normalisation) and how its classes map onto the model's outputs, so that
    data read other than intended is seen at once."""
    from ..ir.head import n_outputs
    n = n_outputs(graph)
    mapping = ", ".join(f"{c} -> {i}" for i, c in enumerate(task.classes))
    return (task.describe() + f"\n  model input {tuple(graph.shapes[graph.input])}, "
            f"{n} outputs; class -> output: {mapping}")


def add_model_args(p, required: bool = True) -> None:
    if required:
        p.add_argument("model", help=MODEL_HELP)
    else:
        p.add_argument("model", nargs="?",
                       help=MODEL_HELP + " (required unless --resume gives it)")
    p.add_argument("--input-shape", help="static input shape if the model's is dynamic, e.g. 1,1,28,28 "
                        "(default: the model's)")


def add_precision_arg(p, of_plan: bool = False) -> None:
    if of_plan:
        help_ = ("kernels' number format, overriding the plan's: int8 (a quantized model on "
                 "the int8 kernels) or fp32 (default: the plan's)")
    else:
        help_ = ("kernels' number format: int8 (a quantized model on the int8 kernels: int8 "
                 "activations and saved maps, fp32 gradients) or fp32 (default: int8 when the "
                 "model is quantized, else fp32)")
    p.add_argument("--precision", choices=("int8", "fp32"), default=None, help=help_)


def resolve_precision(asked, graph) -> str:
    """--precision, or its default: int8 for a quantized model, fp32 otherwise."""
    from ..errors import MedyateError
    if asked is None:
        return "int8" if graph.is_quantized else "fp32"
    if asked == "int8" and not graph.is_quantized:
        raise MedyateError(f"--precision int8: the model {graph.name} is float; quantize it "
                           "first with `medyate convert MODEL --data DATA` (onnxruntime's "
                           "quantize_static, calibrated on your training data)")
    return asked


def add_data_args(p, required: bool = True, absent: str | None = None) -> None:
    """--data and its subset options; `absent` says what happens without --data
    (when it is not required)."""
    when = "required" if required else f"default: {absent}"
    p.add_argument("--data", required=required,
                   help=f"{DATA_HELP} ({when})")
    p.add_argument("--n-train", type=option("n_train"), help="training samples to use (default: the task's)")
    p.add_argument("--n-test", type=option("n_test"), help="test samples to use (default: the task's)")
    p.add_argument("--data-seed", type=option("data_seed"), default=0, help="seed of the task's split (default 0)")


def option(name: str):
    """argparse `type=` for the option `name` of `options.Options`: the value
    parsed and checked against its declared type, or argparse's usage error
    naming the option and its limit."""
    import argparse
    from functools import lru_cache

    from pydantic import TypeAdapter, ValidationError

    from ..schema import describe
    from .options import Options

    info = Options.model_fields[name]

    @lru_cache(maxsize=1)
    def adapter():
        from typing import Annotated
        return TypeAdapter(Annotated[info.annotation, info])

    def parse(text: str):
        try:
            return adapter().validate_python(text)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(f"{describe(exc)[0]} (got {text!r})") from None
    parse.__name__ = name.replace("_", "-")
    return parse
