"""Drawing predictions onto images (uint8 ``(3, H, W)`` tensors) with torchvision's drawing utilities."""

from __future__ import annotations

import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks


def palette(n: int, seed: int = 7) -> torch.Tensor:
    """``(n, 3)`` uint8 distinct-ish colours, the same for the same ``n`` and ``seed``."""
    g = torch.Generator().manual_seed(seed)
    hues = (torch.arange(n, dtype=torch.float32) * 0.618034 + torch.rand((), generator=g)) % 1.0
    rgb = []
    for h in hues.tolist():  # HSV (h, 0.75, 0.95) -> RGB
        i, f = int(h * 6) % 6, h * 6 - int(h * 6)
        v, s = 0.95, 0.75
        p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
        rgb.append([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])
    return (torch.tensor(rgb) * 255).round().to(torch.uint8)


def draw_detections(
    image: torch.Tensor,
    prediction: dict[str, torch.Tensor],
    class_names: list[str],
    *,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    alpha: float = 0.45,
) -> tuple[torch.Tensor, int]:
    """Boxes with ``name score`` captions (and masks when present) for detections above ``score_threshold``.

    ``prediction`` uses torchvision's format with labels 1..K. Returns the drawn image and the count drawn.
    """
    keep = prediction["scores"] >= score_threshold
    boxes, labels, scores = prediction["boxes"][keep], prediction["labels"][keep], prediction["scores"][keep]
    colours = palette(max(len(class_names), 1))
    cols = [tuple(int(c) for c in colours[(int(l) - 1) % len(colours)]) for l in labels]
    out = image
    if "masks" in prediction and len(boxes):
        masks = prediction["masks"][keep][:, 0] > mask_threshold
        out = draw_segmentation_masks(out, masks, alpha=alpha, colors=cols)
    if len(boxes):
        captions = [f"{class_names[int(l) - 1] if 0 < int(l) <= len(class_names) else int(l)} {float(s):.2f}"
                    for l, s in zip(labels, scores)]
        out = draw_bounding_boxes(out, boxes, labels=captions, colors=cols, width=2)
    return out, int(len(boxes))


def draw_segmentation(image: torch.Tensor, label_map: torch.Tensor, num_classes: int, alpha: float = 0.5) -> torch.Tensor:
    """Blend a ``(H, W)`` class map (values ``0..num_classes-1``) over the image in per-class colours."""
    colours = palette(num_classes).to(torch.float32)
    overlay = colours[label_map.long().clamp(0, num_classes - 1)].permute(2, 0, 1)
    return (image.float() * (1 - alpha) + overlay * alpha).round().clamp(0, 255).to(torch.uint8)
