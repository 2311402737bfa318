"""``spmkit predict``'s library side: a run checkpoint and an image in, a drawn PNG and a summary out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from spmkit.errors import SpmkitError


@dataclass
class Prediction:
    """What was drawn: the task, the output path and a short, JSON-able summary."""

    task: str
    output: Path
    summary: dict[str, Any] = field(default_factory=dict)


def predict_image(
    checkpoint: str | Path,
    image_path: str | Path,
    output: str | Path,
    *,
    score_threshold: float = 0.5,
    overrides: list[str] | None = None,
    device: str = "auto",
) -> Prediction:
    """Run a detection or segmentation checkpoint on one image and write the drawing as PNG to ``output``."""
    import spmkit.tasks  # noqa: F401  (registers the tasks)
    from spmkit.data.coco import read_rgb
    from spmkit.engine.checkpoint import load_checkpoint
    from spmkit.engine.recipe import load_recipe
    from spmkit.errors import CheckpointError
    from spmkit.registry import TASKS
    from spmkit.tasks.base import ModelSpec

    ckpt = load_checkpoint(checkpoint)
    task_name = ckpt.get("task", "classification")
    if task_name not in ("detection", "segmentation"):
        raise SpmkitError(f"{checkpoint} is a {task_name!r} run; predict draws detection and segmentation runs.")
    image_path = Path(image_path)
    if not image_path.is_file():
        raise SpmkitError(f"image {image_path} does not exist.")
    image = read_rgb(image_path)
    task_cls = TASKS.get(task_name)
    task = task_cls(load_recipe(task_cls.recipe_class, None, list(overrides or []), base=ckpt["recipe"]))
    info = ckpt["data_info"]
    spec = ModelSpec(ckpt["model_spec"]["blueprint"], tuple(ckpt["model_spec"]["overrides"]),
                     resolved=ckpt.get("blueprint"))
    model = task.build_model(spec, info)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{checkpoint}: weights do not fit the model: {str(e).splitlines()[0]}") from None
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    model.to(dev).eval()
    names = list(info.get("classes", []))
    with torch.no_grad():
        if task_name == "detection":
            drawn, summary = _detect(model, image, names, score_threshold, dev)
        else:
            drawn, summary = _segment(model, task, image, names, dev)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(drawn.permute(1, 2, 0).contiguous().numpy()).save(output, format="PNG")
    return Prediction(task_name, output, summary)


def _detect(model, image, names, score_threshold, dev):
    from spmkit.dense.draw import draw_detections

    pred = {k: v.float().cpu() for k, v in model([image.float().div(255).to(dev)])[0].items()}
    drawn, n = draw_detections(image, pred, names, score_threshold=score_threshold)
    keep = pred["scores"] >= score_threshold
    dets = [{"class": names[int(l) - 1] if 0 < int(l) <= len(names) else int(l), "score": round(float(s), 4),
             "box": [round(float(v), 1) for v in b]}
            for b, l, s in zip(pred["boxes"][keep], pred["labels"][keep], pred["scores"][keep])]
    return drawn, {"detections": dets, "count": n}


def _segment(model, task, image, names, dev):
    from spmkit.data.segmentation_transforms import SegmentationEvalTransform
    from spmkit.dense.draw import draw_segmentation
    from spmkit.dense.seg_inference import infer_logits

    r = task.recipe
    x, _ = SegmentationEvalTransform(r.scale)(image, torch.zeros(1))
    logits = infer_logits(model, x[None].to(dev), mode=r.inference, crop_size=r.crop_size, stride=r.slide_stride,
                          out_size=tuple(image.shape[-2:]))
    label_map = logits.argmax(1)[0].cpu()
    counts = torch.bincount(label_map.flatten(), minlength=model.num_classes).double() / label_map.numel()
    top = [(names[i] if i < len(names) else str(i), round(float(counts[i]), 4))
           for i in counts.argsort(descending=True)[:5].tolist() if counts[i] > 0]
    return draw_segmentation(image, label_map, model.num_classes), {"pixel_fraction": dict(top)}
