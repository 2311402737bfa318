"""Detection and segmentation inference on one image: the drawn picture and a short, JSON-able summary."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spmkit.tasks.base import Task


@torch.no_grad()
def detect_one(model: nn.Module, image: torch.Tensor, names: list[str], score_threshold: float,
               dev: torch.device) -> tuple[torch.Tensor, dict[str, Any]]:
    """Boxes (and masks) scoring at least ``score_threshold``, drawn with readable captions."""
    from spmkit.tasks.dense.draw import draw_detections

    pred = {k: v.float().cpu() for k, v in model([image.float().div(255).to(dev)])[0].items()}
    drawn, n = draw_detections(image, pred, names, score_threshold=score_threshold)
    keep = pred["scores"] >= score_threshold
    dets = [{"class": names[int(l) - 1] if 0 < int(l) <= len(names) else int(l), "score": round(float(s), 4),
             "box": [round(float(v), 1) for v in b]}
            for b, l, s in zip(pred["boxes"][keep], pred["labels"][keep], pred["scores"][keep])]
    return drawn, {"detections": dets, "count": n}


@torch.no_grad()
def segment_one(model: nn.Module, task: Task, image: torch.Tensor, names: list[str], dev: torch.device,
                legend: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """The class map blended over the image, with a legend of the classes present (most pixels first)."""
    from spmkit.data.segmentation_transforms import SegmentationEvalTransform
    from spmkit.tasks.dense.draw import add_legend, draw_segmentation
    from spmkit.tasks.segmentation.inference import infer_logits

    r = task.recipe
    x, _ = SegmentationEvalTransform(r.scale)(image, torch.zeros(1))
    logits = infer_logits(model, x[None].to(dev), mode=r.inference, crop_size=r.crop_size, stride=r.slide_stride,
                          out_size=tuple(image.shape[-2:]))
    label_map = logits.argmax(1)[0].cpu()
    counts = torch.bincount(label_map.flatten(), minlength=model.num_classes).double() / label_map.numel()
    order = [i for i in counts.argsort(descending=True).tolist() if counts[i] > 0]
    name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
    drawn = draw_segmentation(image, label_map, model.num_classes)
    if legend:
        drawn = add_legend(drawn, [(f"{name(i)} {100 * float(counts[i]):.0f}%", i) for i in order],
                           model.num_classes)
    return drawn, {"pixel_fraction": {name(i): round(float(counts[i]), 4) for i in order[:5]}}
