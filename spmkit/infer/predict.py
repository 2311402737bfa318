"""``spmkit predict``'s library side: a run checkpoint and an image or a folder in, predictions out.

Classification: the top-k classes with probabilities per image (and, on request, a PNG contact sheet).
Detection / segmentation: one drawn PNG per image (boxes with readable captions; the class map with a
legend) and a short summary per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spmkit.errors import DataError, SpmkitError


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
    predictions: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)


def load_run(checkpoint: str | Path, overrides: list[str] | None = None, device: str = "auto") -> LoadedRun:
    """Rebuild a run's model from its checkpoint (any task) with its weights, in eval mode."""
    from spmkit.infer.devices import resolve_device
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


@torch.no_grad()
def classify(run: LoadedRun, files: list[Path], top_k: int = 5, batch_size: int = 32) -> list[dict[str, Any]]:
    """Top-``top_k`` classes with softmax probabilities for each image, in the evaluation transform."""
    from PIL import Image

    tf = run.task.eval_transform(run.model)
    k = min(top_k, len(run.names) or top_k)
    out: list[dict[str, Any]] = []
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        tensors = []
        for p in chunk:
            try:
                with Image.open(p) as im:
                    tensors.append(tf(im.convert("RGB")))
            except Exception as e:  # noqa: BLE001 - PIL raises many types
                raise DataError(f"cannot read image {p}: {e}") from None
        with run.task.autocast(run.device):
            logits = run.model(torch.stack(tensors).to(run.device))
        probs = logits.float().softmax(-1).cpu()
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        for p, vs, ix in zip(chunk, values.tolist(), indices.tolist()):
            top = [{"class": run.names[i] if i < len(run.names) else str(i), "index": i, "probability": round(v, 6)}
                   for v, i in zip(vs, ix)]
            out.append({"image": str(p), "class": top[0]["class"], "probability": top[0]["probability"],
                        f"top{top_k}": top})  # named by the request: "top5" even with fewer classes
    return out


def _save_png(image: torch.Tensor, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(path, format="PNG")
    return path


def predict(checkpoint: str | Path, inputs: str | Path, output: str | Path | None = None, *, top_k: int = 5,
            score_threshold: float = 0.5, overrides: list[str] | None = None, device: str = "auto",
            force: bool = False) -> PredictResult:
    """Run a checkpoint on an image or every image of a folder.

    ``output``: classification: a PNG contact sheet (none when ``None``); detection / segmentation: the PNG
    for a single image (default ``IMAGE_pred.png`` here), or a folder of ``NAME_pred.png`` for a folder
    (default ``FOLDER_pred`` here). No PNG is written over an input or the checkpoint, nor over an existing
    file unless ``force``: all are checked before anything runs.
    """
    from spmkit.io.output_paths import check_output_path

    inputs = Path(inputs)
    files = image_files(inputs)
    sources = {f.resolve() for f in files}

    def check(target: str | Path) -> None:  # a set lookup, not a comparison with every input image
        hit = Path(target).resolve()
        check_output_path(target, [Path(checkpoint), inputs, *([hit] if hit in sources else [])], force)
    if output is not None and inputs.is_file():  # one image: the output is one PNG whatever the task
        check(output)
    run = load_run(checkpoint, overrides, device)
    result = PredictResult(run.task_name)
    if run.task_name == "classification":
        if output is not None:
            check(output)
        result.predictions = classify(run, files, top_k)
        if output is not None:
            from spmkit.data.coco import read_rgb
            from spmkit.tasks.dense.draw import contact_sheet

            captions = [_caption(p) for p in result.predictions]
            sheet = contact_sheet([read_rgb(f) for f in files], captions)
            result.outputs.append(_save_png(sheet, Path(output)))
        return result
    if run.task_name not in ("detection", "segmentation"):
        raise SpmkitError(f"{checkpoint} is a {run.task_name!r} run; predict knows classification, detection "
                          f"and segmentation.")
    from spmkit.data.coco import read_rgb
    from spmkit.tasks.dense.predict import detect_one, segment_one

    single = inputs.is_file()
    folder = Path(output) if output is not None and not single else Path(f"{inputs.name}_pred")
    targets = [(Path(output) if output is not None else Path(f"{f.stem}_pred.png")) if single
               else folder / f"{f.stem}_pred.png" for f in files]
    if not single and folder.resolve() == inputs.resolve():
        check_output_path(folder, [inputs], force, option="--output folder")  # never into the input folder
    for target in targets:
        check(target)
    for f, target in zip(files, targets):
        image = read_rgb(f)
        if run.task_name == "detection":
            drawn, summary = detect_one(run.model, image, run.names, score_threshold, run.device)
        else:
            drawn, summary = segment_one(run.model, run.task, image, run.names, run.device)
        result.outputs.append(_save_png(drawn, target))
        result.predictions.append({"image": str(f), "output": str(target), **summary})
    return result


def _caption(pred: dict[str, Any]) -> list[str]:
    top = next(v for k, v in pred.items() if k.startswith("top") and isinstance(v, list))
    path = Path(pred["image"])
    return [f"{path.parent.name}/{path.name}" if path.parent.name else path.name] + [f"{100 * t['probability']:5.1f}% {t['class']}" for t in top[:3]]
