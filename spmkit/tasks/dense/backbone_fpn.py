"""Any backbone's strides-4..32 maps through torchvision's ``FeaturePyramidNetwork``, in the shape
torchvision's detectors expect (``out_channels`` attribute, an ordered dict of maps)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7

from spmkit.tasks.dense.features import MultiScaleFeatures


class BackboneFPN(nn.Module):
    """Backbone + FPN.

    ``extra="maxpool"`` (Mask R-CNN): inputs at strides 4-32, outputs ``0..3`` and ``pool`` (stride 64).
    ``extra="p6p7"`` (RetinaNet, as in mmdet's ``start_level=1, add_extra_convs="on_input"``): inputs at
    strides 8-32, outputs ``0..2``, ``p6`` and ``p7`` computed from the backbone's stride-32 map.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        out_channels: int = 256,
        extra: Literal["maxpool", "p6p7"] = "maxpool",
    ) -> None:
        super().__init__()
        reductions = (4, 8, 16, 32) if extra == "maxpool" else (8, 16, 32)
        self.body = MultiScaleFeatures(model, reductions)
        chans = self.body.channels
        if extra == "maxpool":
            extra_block: nn.Module = LastLevelMaxPool()
        elif extra == "p6p7":
            extra_block = LastLevelP6P7(chans[-1], out_channels)
        else:
            raise ValueError(f"unknown FPN extra block {extra!r}; use 'maxpool' or 'p6p7'.")
        self.fpn = FeaturePyramidNetwork(chans, out_channels, extra_blocks=extra_block)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))
