"""Semantic FPN head (Kirillov et al., "Panoptic Feature Pyramid Networks"), the segmentation head of
the PVT / SPM papers; layout as mmseg's ``FPN`` neck + ``FPNHead``."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FeaturePyramidNetwork

from spmkit.tasks.dense.conv_norm_act import ConvNormAct


class SemanticFPNHead(nn.Module):
    """Maps at strides ``strides`` -> logits ``(N, num_classes, H/4, W/4)`` (stride of the finest map).

    torchvision's FPN (``fpn_channels``) then per level ``max(1, log2(stride / 4))`` conv-GN-ReLU units of
    ``channels`` each followed by 2x bilinear upsampling, summed, dropout, 1x1 classifier.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        *,
        strides: Sequence[int] = (4, 8, 16, 32),
        fpn_channels: int = 256,
        channels: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(strides):
            raise ValueError(f"{len(in_channels)} input maps but {len(strides)} strides.")
        self.fpn = FeaturePyramidNetwork(list(in_channels), fpn_channels)
        self.scale_heads = nn.ModuleList()
        for stride in strides:
            n = max(1, int(math.log2(stride) - math.log2(strides[0])))
            layers: list[nn.Module] = []
            for k in range(n):
                layers.append(ConvNormAct(fpn_channels if k == 0 else channels, channels, 3))
                if stride != strides[0]:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.scale_heads.append(nn.Sequential(*layers))
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        pyramid = list(self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats))).values())
        out = self.scale_heads[0](pyramid[0])
        for head, p in zip(self.scale_heads[1:], pyramid[1:]):
            y = head(p)
            if y.shape[-2:] != out.shape[-2:]:
                y = F.interpolate(y, size=out.shape[-2:], mode="bilinear", align_corners=False)
            out = out + y
        return self.classifier(self.dropout(out))
