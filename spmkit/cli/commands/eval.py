"""``spmkit eval``: top-1 / top-5 (or the task's metrics) and images/s on a data folder's val split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import (DeviceOption, DevicesAlias, JsonOption, ModelSetOption, RecipeSetOption,
                                pick_device)


def register(app: typer.Typer) -> None:
    app.command("eval", help="Evaluate a run checkpoint, or a blueprint with (timm) weights, on DATA/val.")(eval_)


@user_errors
def eval_(
    data: Annotated[Path, typer.Option("--data", help="data folder with a val/ split")],
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="spmkit run checkpoint (last.pt / best.pt)")] = None,
    blueprint: Annotated[Optional[str], typer.Option("--blueprint", "-b", help="blueprint (instead of --checkpoint)")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="weights for --blueprint (spmkit, timm or an official release's; converted, loaded strictly)")] = None,
    task: Annotated[str, typer.Option("--task", help="task for --blueprint")] = "classification",
    model_set: ModelSetOption = None,
    set_: RecipeSetOption = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=0)] = None,
    device: DeviceOption = None,
    devices: DevicesAlias = None,
    ema: Annotated[bool, typer.Option("--ema", metavar="", help="evaluate the checkpoint's EMA weights")] = False,
    json_: JsonOption = False,
) -> None:
    from spmkit.infer.devices import check_devices
    from spmkit.infer.evaluate import evaluate
    from spmkit.tasks.base import ModelSpec

    if checkpoint is None and blueprint is None:
        raise typer.BadParameter("give --checkpoint RUN/best.pt, or --blueprint (with --weights).")
    if weights is not None and blueprint is None:
        raise typer.BadParameter("--weights needs --blueprint.")
    device = pick_device(device, devices)
    check_devices(device)
    result = evaluate(
        data=data, checkpoint=checkpoint, model=ModelSpec(blueprint, tuple(model_set or ())) if blueprint else None,
        weights=weights, task=task, overrides=list(set_ or []), batch_size=batch_size, workers=workers,
        device=device, use_ema=ema,
    )
    if json_:
        typer.echo(json.dumps(result))
        return
    for k, v in result.items():
        typer.echo(f"{k:>14}: {v:.4f}" if isinstance(v, float) else f"{k:>14}: {v}")
