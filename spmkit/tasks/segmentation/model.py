"""Backbone + segmentation head: float images in [0, 1] -> per-pixel class logits at the input size."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.tasks.dense.backbone_params import BackboneParamHints
from spmkit.tasks.dense.features import MultiScaleFeatures
from spmkit.tasks.segmentation.semantic_fpn import SemanticFPNHead
from spmkit.tasks.segmentation.upernet import UperNetHead

SEG_HEADS = ("semantic_fpn", "upernet")


class Segmentor(BackboneParamHints, nn.Module):
    """Normalises, pads the batch to a multiple of 32 (so every merging type sees even sizes at every
    stage), runs backbone and head, upsamples the logits bilinearly and crops the padding away."""

    backbone_path = "backbone.body"

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        head: Literal["semantic_fpn", "upernet"] = "semantic_fpn",
        image_mean: Sequence[float] = (0.485, 0.456, 0.406),
        image_std: Sequence[float] = (0.229, 0.224, 0.225),
        size_divisor: int = 32,
        **head_kwargs,
    ) -> None:
        super().__init__()
        self.backbone = MultiScaleFeatures(backbone, (4, 8, 16, 32))
        if head == "semantic_fpn":
            self.head: nn.Module = SemanticFPNHead(self.backbone.channels, num_classes, **head_kwargs)
        elif head == "upernet":
            self.head = UperNetHead(self.backbone.channels, num_classes, **head_kwargs)
        else:
            raise ValueError(f"unknown segmentation head {head!r}; choose one of {', '.join(SEG_HEADS)}.")
        self.num_classes = num_classes
        self.size_divisor = size_divisor
        self.register_buffer("image_mean", torch.tensor(image_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(image_std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        d = self.size_divisor
        x = (images - self.image_mean) / self.image_std
        ph, pw = (-h) % d, (-w) % d
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        logits = self.head(self.backbone(x))
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :h, :w]
