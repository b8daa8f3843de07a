"""The one place a model is loaded for a task: every command that trains, plans or
builds (plan, build, train, demo, flash) gets its graph here, so all of them train
the same model.

A model whose output count differs from the task's classes gets a new classifier
head (`planner.plan.new_head`; the initialisation is in `ir.head`): without a plan
it is made and returned with its plan.json record; with a plan, it is made again
from the plan's record and checked bit-identical (`planner.plan.plan_head`). A plan
that kept the model's head cannot train a task of another class count.
"""
from __future__ import annotations

from ..errors import MedyateError


def input_shape_of(model, input_shape=None) -> tuple:
    """The model's input shape (N, C, H, W), which user data is read at (an image
    folder's channels and size)."""
    from ..data import resolve_model
    from ..ir.onnx_import import load_onnx
    graph = load_onnx(str(resolve_model(model)), input_shape)
    return tuple(graph.shapes[graph.input])


def load_for_task(model, *, task=None, plan=None, seed: int = 0, input_shape=None,
                  log=print):
    """(path, graph, head record or None) for `model` (a file or a bundled name).

    plan None (making a plan): with `task`, the head is fitted to its classes from
    `seed` and the record returned for the plan. With a plan: its head (if any) is
    made, the plan is checked against the model, and `task`'s classes against the
    plan's head."""
    from ..data import check_task, resolve_model
    from ..ir.head import n_outputs
    from ..ir.onnx_import import load_onnx
    from ..planner.plan import check_plan_against, check_plan_model, new_head, plan_head

    path = resolve_model(model)
    graph = load_onnx(str(path), input_shape)
    record = None
    if plan is None:
        if task is not None:
            check_task(task, graph.shapes[graph.input])
            graph, record = new_head(graph, task.n_classes, seed, log=log)
    else:
        # the model's hash first: a head made for another model is meaningless
        check_plan_model(plan, graph, model_path=path)
        graph = plan_head(plan, graph, log=log)
        check_plan_against(plan, graph, model_path=path)
        record = plan.head
        if task is not None:
            if plan.head is None:
                # a plan made without a new head (by hand, by the library, or before
                # heads were replaced) trains the model's own head, as it says
                check_task(task, graph.shapes[graph.input], n_outputs(graph))
                if task.n_classes != n_outputs(graph) and log is not None:
                    log(f"note: the plan keeps the model's head of {n_outputs(graph)} "
                        f"outputs for the task's {task.n_classes} classes; `medyate plan` "
                        "on this task replaces it")
            else:
                check_task(task, graph.shapes[graph.input])
                if task.n_classes != plan.head["classes"]:
                    raise MedyateError(
                        f"task {task.name} has {task.n_classes} classes but the plan's "
                        f"head has {plan.head['classes']} (it was made for another task): "
                        "re-run `medyate plan` on this task")
    return path, graph, record
