"""The firmware of a plan: lower and plan the model, generate its C sources,
build the board image, and place the task's samples (built into flash next
to the model when they fit, else streamed; see dataset_placement).

    build_device_firmware(graph, plan, board, build_dir) -> (program, BuildResult)
    build_with_data(plan.json, board, out_dir, data=...) -> (program, BuildResult, Placement)

`medyate build`, `medyate-flash --plan` and the device session all build
through here.
"""
from __future__ import annotations

from pathlib import Path


def build_device_firmware(graph, plan, board: str, build_dir, log=print, kernels=None):
    """Lower and plan the model, generate its C sources, build the board image.
    kernels: the optimized kernel folders to select (default: the board's; []
    builds the reference kernels only). Returns (program, BuildResult)."""
    from ..boards import build_firmware
    from ..codegen import generate
    from ..planner.arena import plan_arena
    from ..planner.program import lower

    build_dir = Path(build_dir)
    program = lower(graph.copy(), plan.layers, plan.train_bias, plan.precision,
                    getattr(plan, "bias_only", ()))
    plan_arena(program, plan.budget_elements)
    _check_arena_fits(program, plan, board)
    generate(program, build_dir / "model", source=Path(plan.model).name)
    log(f"building firmware for {board} (arena {program.memory.arena_size} B) ...")
    extra = {"MEDYATE_KERNELS": list(kernels)} if kernels is not None else None
    return program, build_firmware(board, build_dir / "model", build_dir / "build",
                                   extra_defs=extra)


def build_and_place(graph, plan, board: str, out, task=None, log=print):
    """Build the plan's firmware into `out` and, with a task, place its samples.
    Returns (program, BuildResult of the image to flash, Placement or None);
    the placement decision is passed to `log`."""
    from ..codegen.dataset import remove_dataset_source
    from .dataset_placement import place_dataset, task_image

    out = Path(out)
    # The firmware's own size decides the placement: build it without a
    # dataset left in the model directory by an earlier build.
    remove_dataset_source(out / "model")
    program, build = build_device_firmware(graph, plan, board, out, log=lambda *_: None)
    if task is None:
        return program, build, None
    placement = place_dataset(board, out / "model", out / "build", task_image(program, task),
                              build, log=log)
    return program, placement.build, placement


def build_with_data(plan_path, board: str, out_dir, model: str | None = None, data=None,
                    n_train: int | None = None, n_test: int | None = None,
                    data_seed: int = 0, log=print):
    """Build the firmware of a plan file and, with `data` (a task name or
    path), place its samples: built into flash if firmware and dataset fit the
    board's flash, else left to be streamed. Returns (program, BuildResult,
    Placement or None); the decision is passed to `log`."""
    from ..data import load_task
    from ..planner.plan import load_plan
    from .model import input_shape_of, load_for_task

    plan = load_plan(plan_path)
    task = None
    if data is not None:
        task = load_task(data, seed=data_seed, n_train=n_train, n_test=n_test,
                         input_shape=input_shape_of(model or plan.model))
    _, graph, _ = load_for_task(model or plan.model, task=task, plan=plan, log=log)
    return build_and_place(graph, plan, board, Path(out_dir), task, log)


def _check_arena_fits(program, plan, board: str) -> None:
    """A plan whose budget (say, edited by hand) needs more arena than the
    board has RAM is refused before any source is generated or built, naming
    the budget and the limit; the linker would only say later that RAM
    overflowed."""
    from ..boards import get_board
    from ..errors import MedyateError
    b = get_board(board)
    need = program.memory.arena_size
    if b.ram and need > b.ram:
        raise MedyateError(
            f"the plan's budget of {plan.budget_elements} elements needs an arena of {need} B, "
            f"more than the {b.name} board's RAM of {b.ram} B; plan again for this board "
            f"(medyate plan --board {b.name})")
