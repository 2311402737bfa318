"""Joint image/target transforms for detection.

Only what torchvision's detectors do not do themselves: their ``GeneralizedRCNNTransform`` already
resizes (``min_size``/``max_size``: the 1333x800 of the 1x recipe), normalises and pads every batch to a
multiple of 32, and maps predictions back to the input image's size.
"""

from __future__ import annotations

import torch

Target = dict[str, torch.Tensor]


def hflip_detection(image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
    """Mirror an image ``(C, H, W)`` with its boxes (xyxy) and masks ``(N, H, W)``."""
    width = image.shape[-1]
    target = dict(target)
    if "boxes" in target and target["boxes"].numel():
        b = target["boxes"].clone()
        b[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
        target["boxes"] = b
    if "masks" in target:
        target["masks"] = target["masks"].flip(-1)
    return image.flip(-1), target


class DetectionTransform:
    """uint8 image -> float in [0, 1]; random horizontal flip with probability ``flip_prob``."""

    def __init__(self, flip_prob: float = 0.0, generator: torch.Generator | None = None) -> None:
        self.flip_prob = flip_prob
        self.generator = generator

    def __call__(self, image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
        if self.flip_prob > 0 and torch.rand((), generator=self.generator).item() < self.flip_prob:
            image, target = hflip_detection(image, target)
        return image.float().div_(255), target
