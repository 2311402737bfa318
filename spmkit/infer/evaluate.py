"""Evaluate a run's checkpoint, or a blueprint with weights, on the val split of a data folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from spmkit.io.devices import resolve_device
from spmkit.train.distributed import DistContext
from spmkit.convert.load import load_weights
from spmkit.tasks.recipe import load_recipe
from spmkit.infer.run_model import load_run_model
from spmkit.data.sampling import loader_sampler, process_sampler
from spmkit.train.worker_errors import SafeLoader
from spmkit.errors import SpmkitError
from spmkit.io.user_code import task_class
from spmkit.tasks.base import ModelSpec

import spmkit.tasks  # noqa: F401  (registers the tasks)


def evaluate(*, data: str | Path, checkpoint: str | Path | None = None, model: ModelSpec | None = None,
             weights: str | Path | None = None, task: str | None = None, overrides: list[str] | None = None,
             batch_size: int | None = None, workers: int | None = None, device: str = "auto",
             use_ema: bool = False) -> dict[str, Any]:
    """Metrics of the task's ``evaluate`` plus ``images``, ``images_per_s`` and ``seconds``.

    Either ``checkpoint`` (an spmkit run checkpoint: model, recipe and classes come from it) or ``model``
    with optional ``weights`` (an official release's, timm's or spmkit's, converted and loaded strictly;
    ``use_ema`` takes their EMA copy).
    """
    if (checkpoint is None) == (model is None):
        raise SpmkitError("give either --checkpoint or --blueprint (with --weights), not both or neither.")
    dev = resolve_device(device)
    extra = list(overrides or [])
    if batch_size is not None:
        extra.append(f"batch_size={batch_size}")
    if workers is not None:
        extra.append(f"workers={workers}")
    if checkpoint is not None:
        run = load_run_model(checkpoint, extra, use_ema=use_ema,
                             info=lambda task, stored: task.eval_data_info(Path(data), stored))
        t, net, info = run.task, run.model, run.info
        recipe = t.recipe
    else:
        task_cls = task_class(task or "classification")
        recipe = load_recipe(task_cls.recipe_class, None, extra)
        t = task_cls(recipe)
        info = t.eval_data_info(Path(data), None)
        net = t.build_model(model, info)
        if weights is not None:  # official, timm or spmkit weights; every tensor must fit
            load_weights(t.init_target(net), weights, strict=True, ema=use_ema)
    net.to(dev).eval()
    if recipe.channels_last:
        net.to(memory_format=torch.channels_last)
    ds = t.build_dataset(Path(data), "val", net, info)
    loader = SafeLoader(
        ds, batch_size=recipe.batch_size, sampler=loader_sampler(process_sampler(ds, shuffle=False, pad=False)),
        num_workers=recipe.resolved_workers(), collate_fn=t.collate_fn("val"), pin_memory=dev.type == "cuda")
    ctx = DistContext(device=dev)
    t0 = time.perf_counter()
    metrics = t.evaluate(net, loader, ctx)
    seconds = time.perf_counter() - t0
    n = int(metrics.get("val_images", len(ds)))  # unreadable images are left out (val_skipped)
    return {**metrics, "images": n, "seconds": seconds, "images_per_s": n / max(seconds, 1e-9)}
