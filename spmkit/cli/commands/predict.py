"""``spmkit predict``: a run checkpoint on an image or a folder (classification, detection, segmentation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import DeviceOption, DevicesAlias, JsonOption, RecipeSetOption, pick_device

HELP = """Predict with a run checkpoint on IMAGE or every image of a folder.

Classification: the top-k classes with probabilities per image (-o sheet.png: a contact sheet).
Detection / segmentation: drawn PNGs (boxes with captions; the class map with a legend): -o FILE for one
image (default IMAGE_pred.png here), -o FOLDER for a folder (default FOLDER_pred/).
"""


def register(app: typer.Typer) -> None:
    app.command("predict", help=HELP)(predict)


@user_errors
def predict(
    image: Annotated[Path, typer.Argument(help="image file (JPEG, PNG, ...) or a folder of images")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="spmkit run checkpoint (last.pt / best.pt)")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="PNG (one image, contact sheet) or folder to write")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=1000, help="classification: classes shown per image")] = 5,
    score_threshold: Annotated[float, typer.Option("--score-threshold", min=0.0, max=1.0, help="detection: draw boxes scoring at least this")] = 0.5,
    set_: RecipeSetOption = None,
    device: DeviceOption = None,
    devices: DevicesAlias = None,
    force: Annotated[bool, typer.Option("--force", help="Replace output PNGs even if spmkit predict did not write them (never an input).")] = False,
    json_: JsonOption = False,
) -> None:
    from spmkit.io.devices import check_devices
    from spmkit.infer.predict import predict as run_predict

    device = pick_device(device, devices)
    check_devices(device)
    result = run_predict(checkpoint, image, output, top_k=top_k, score_threshold=score_threshold,
                         overrides=list(set_ or []), device=device, force=force)
    if json_:
        doc = {"task": result.task, "predictions": result.predictions}
        if len(result.predictions) == 1:  # one image: its fields at the top level too
            doc.update(result.predictions[0])
        if result.kind == "sheet" and result.outputs:
            doc["output"] = str(result.outputs[0])
        typer.echo(json.dumps(doc))
        return
    if result.kind == "sheet":  # one table of every image's top classes, then the contact sheet if any
        _top_classes_table(result.predictions)
        for path in result.outputs:
            typer.echo(f"wrote {path}")
        return
    for p in result.predictions:
        typer.echo(f"{result.task}: {p['image']} -> {p['output']}")
        for det in p.get("detections", []):
            typer.echo(f"  {det['class']:>16} {det['score']:.2f}  box {det['box']}")
        for name, frac in p.get("pixel_fraction", {}).items():
            typer.echo(f"  {name:>16} {100 * frac:5.1f}% of pixels")


def _top_classes_table(predictions: list[dict]) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    k = max(len(v) for p in predictions for key, v in p.items() if key.startswith("top") and isinstance(v, list))
    table = Table(title=f"top-{k} classes", title_justify="left")
    table.add_column("image", overflow="fold")
    for i in range(k):
        table.add_column(f"#{i + 1}", overflow="fold")
    for p in predictions:
        top = next(v for key, v in p.items() if key.startswith("top") and isinstance(v, list))
        table.add_row(p["image"], *[f"{t['class']} {100 * t['probability']:.1f}%" for t in top])
    Console(width=None if sys.stdout.isatty() else 200).print(table)
