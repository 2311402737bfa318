"""``spmkit predict``'s library side: a run checkpoint and an image or a folder in, predictions out.

The run's task does the work (``Task.predict`` / ``Task.draw_sheet``, ``spmkit.tasks.base``); this
module finds the images, checks the outputs and writes them. Classification: the top-k classes with
probabilities per image (and, on request, a PNG contact sheet). Detection / segmentation: one drawn PNG per
image (boxes with readable captions; the class map with a legend) and a short summary per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spmkit.errors import DataError, SpmkitError
from spmkit.tasks.base import PredictOptions


@dataclass
class LoadedRun:
    """A checkpoint's task, model (eval mode, on ``device``) and class names."""

    task_name: str
    task: Any
    model: nn.Module
    names: list[str]
    device: torch.device


@dataclass
class PredictResult:
    """What ``predict`` found: one JSON-able dict per image, and the files it wrote."""

    task: str
    #: the task's ``predict_output``: "sheet" (summaries, one optional contact sheet) or "per_image"
    kind: str = "per_image"
    predictions: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)


def load_run(checkpoint: str | Path, overrides: list[str] | None = None, device: str = "auto") -> LoadedRun:
    """Rebuild a run's model from its checkpoint (any task) with its weights, in eval mode."""
    from spmkit.io.devices import resolve_device
    from spmkit.infer.run_model import load_run_model

    dev = resolve_device(device)
    run = load_run_model(checkpoint, list(overrides or []))
    run.model.to(dev).eval()
    return LoadedRun(run.task_name, run.task, run.model, list(run.info.get("classes", [])), dev)


def image_files(path: str | Path) -> list[Path]:
    """``path`` itself, or the images of a folder (sorted; subfolders included)."""
    from spmkit.data.imagenet import IMG_EXTENSIONS

    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SpmkitError(f"image {path} does not exist.")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"{path} holds no images (extensions: {', '.join(IMG_EXTENSIONS)}).")
    return files


def _save_png(image: torch.Tensor, path: Path, outs) -> Path:
    from PIL import Image

    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    return outs.write(path, lambda f: pil.save(f, format="PNG"))


def predict(checkpoint: str | Path, inputs: str | Path, output: str | Path | None = None, *, top_k: int = 5,
            score_threshold: float = 0.5, overrides: list[str] | None = None, device: str = "auto",
            force: bool = False) -> PredictResult:
    """Run a checkpoint on an image or every image of a folder.

    ``output``: classification: a PNG contact sheet (none when ``None``); detection / segmentation: the PNG
    for a single image (default ``IMAGE_pred.png`` here), or a folder of ``NAME_pred.png`` for a folder
    (default ``FOLDER_pred`` here). No PNG is written over an input or the checkpoint, nor over an existing
    file that ``spmkit predict`` did not write unless ``force``: all are checked before anything runs, and
    each is written atomically (``spmkit.io.output_paths``).
    """
    from spmkit.io.output_paths import Outputs, check_output_path

    inputs = Path(inputs)
    files = image_files(inputs)
    sources = {f.resolve() for f in files}

    outs = Outputs("predict", inputs=[Path(checkpoint), inputs], force=force)

    def check(target: str | Path) -> None:  # a set lookup, not a comparison with every input image
        hit = Path(target).resolve()
        outs.claim(target, extra_inputs=[hit] if hit in sources else [])
    if output is not None and inputs.is_file():  # one image: the output is one PNG whatever the task
        check(output)
    run = load_run(checkpoint, overrides, device)
    task = run.task
    result = PredictResult(run.task_name, kind=task.predict_output)
    if not task.can_predict():
        raise SpmkitError(f"{checkpoint} is a {run.task_name!r} run; its task does not implement predict "
                          f"(spmkit.tasks.base.Task.predict).")
    options = PredictOptions(top_k=top_k, score_threshold=score_threshold)
    if task.predict_output == "sheet":
        if output is not None:
            check(output)
        summaries = task.predict(run.model, files, run.names, run.device, options)
        result.predictions = [{"image": str(f), **summary} for f, (summary, _) in zip(files, summaries)]
        if output is not None:
            with outs:
                result.outputs.append(_save_png(task.draw_sheet(files, result.predictions), Path(output), outs))
        return result
    single = inputs.is_file()
    folder = Path(output) if output is not None and not single else Path(f"{inputs.name}_pred")
    targets = [(Path(output) if output is not None else Path(f"{f.stem}_pred.png")) if single
               else folder / f"{f.stem}_pred.png" for f in files]
    if not single and folder.resolve() == inputs.resolve():
        check_output_path(folder, [inputs], force, option="--output folder")  # never into the input folder
    for target in targets:
        check(target)
    drawn_images = task.predict(run.model, files, run.names, run.device, options)
    with outs:
        for f, target, (summary, drawn) in zip(files, targets, drawn_images):
            result.outputs.append(_save_png(drawn, target, outs))
            result.predictions.append({"image": str(f), "output": str(target), **summary})
    return result
