"""``spmkit predict``: draw a detection or segmentation run's prediction for one image as a PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import JsonOption


def register(app: typer.Typer) -> None:
    app.command("predict", help="Draw a detection / segmentation checkpoint's prediction on IMAGE (PNG).")(predict)


@user_errors
def predict(
    image: Annotated[Path, typer.Argument(help="image file (JPEG, PNG, ...)")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="spmkit run checkpoint (last.pt / best.pt)")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG to write (default: IMAGE_pred.png here)")] = None,
    score_threshold: Annotated[float, typer.Option("--score-threshold", min=0.0, max=1.0, help="detection: draw boxes scoring at least this")] = 0.5,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", help="recipe override KEY=VALUE, e.g. inference=slide")] = None,
    devices: Annotated[str, typer.Option("--devices", help="auto, cpu or cuda")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output PNG if it exists.")] = False,
    json_: JsonOption = False,
) -> None:
    from spmkit.cli.paths import check_output_path
    from spmkit.dense.predict import predict_image
    from spmkit.engine.devices import check_devices

    check_devices(devices)

    out = output if output is not None else Path(f"{image.stem}_pred.png")
    check_output_path(out, [image, checkpoint], force)
    result = predict_image(checkpoint, image, out, score_threshold=score_threshold, overrides=list(set_ or []),
                           device=devices)
    if json_:
        typer.echo(json.dumps({"task": result.task, "output": str(result.output), **result.summary}))
        return
    typer.echo(f"{result.task}: wrote {result.output}")
    for det in result.summary.get("detections", []):
        typer.echo(f"  {det['class']:>16} {det['score']:.2f}  box {det['box']}")
    for name, frac in result.summary.get("pixel_fraction", {}).items():
        typer.echo(f"  {name:>16} {100 * frac:5.1f}% of pixels")
