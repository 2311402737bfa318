"""A run checkpoint's model rebuilt with its weights: the one path that eval, predict, export and visualize use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from spmkit.errors import CheckpointError


@dataclass
class RunModel:
    task_name: str
    task: Any  # spmkit.tasks.base.Task, with the run's recipe (and any overrides)
    model: nn.Module
    info: dict[str, Any]  # the data info the model was built for (classes, ...)
    spec: Any  # spmkit.tasks.base.ModelSpec


def load_run_model(path: str | Path, recipe_overrides: Sequence[str] = (), *, use_ema: bool = False,
                   info: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None,
                   check: Callable[[str, Any], None] | None = None) -> RunModel:
    """Rebuild the model of the run checkpoint ``path`` (any task) and load its weights (``use_ema``: its EMA).

    ``info(task, stored_info)`` may replace the stored data info (evaluation checks it against a data folder);
    ``check(task_name, spec)`` may refuse the run before anything is built. Weights that do not fit are a
    ``CheckpointError`` naming the file. The model is returned in train mode on the CPU.
    """
    import spmkit.tasks  # noqa: F401  (registers the tasks)
    from spmkit.io.checkpoint import load_checkpoint
    from spmkit.tasks.recipe import load_recipe
    from spmkit.io.user_code import task_class
    from spmkit.tasks.base import ModelSpec

    ckpt = load_checkpoint(path)
    task_name = ckpt.get("task", "classification")
    spec = ModelSpec(ckpt["model_spec"]["blueprint"], tuple(ckpt["model_spec"]["overrides"]),
                     resolved=ckpt.get("blueprint"))
    if check is not None:
        check(task_name, spec)
    task_cls = task_class(task_name)  # SOURCE:NAME (a user's task): imports SOURCE
    task = task_cls(load_recipe(task_cls.recipe_class, None, list(recipe_overrides), base=ckpt["recipe"]))
    data_info = info(task, ckpt["data_info"]) if info is not None else ckpt["data_info"]
    model = task.build_model(spec, data_info)
    sd = ckpt.get("ema") if use_ema else ckpt["model"]
    if sd is None:
        raise CheckpointError(f"{path} has no EMA weights (the run had ema: false).")
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model: {str(e).splitlines()[0]}") from None
    return RunModel(task_name, task, model, data_info, spec)
