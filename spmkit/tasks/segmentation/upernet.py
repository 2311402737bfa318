"""UperNet head (Xiao et al., "Unified Perceptual Parsing"), layout as mmseg's ``UPerHead``: a pyramid
pooling module on the coarsest map, an FPN top-down path, all levels fused at the finest stride."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.tasks.dense.conv_norm_act import ConvNormAct


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UperNetHead(nn.Module):
    """Maps (finest first) -> logits at the finest map's stride."""

    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        *,
        channels: int = 512,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.ppm = nn.ModuleList(ConvNormAct(in_channels[-1], channels, 1) for _ in pool_scales)
        self.ppm_bottleneck = ConvNormAct(in_channels[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral = nn.ModuleList(ConvNormAct(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvNormAct(channels, channels, 3) for _ in in_channels[:-1])
        self.fuse = ConvNormAct(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def _psp(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for scale, conv in zip(self.pool_scales, self.ppm):
            outs.append(_resize(conv(F.adaptive_avg_pool2d(x, scale)), x.shape[-2:]))
        return self.ppm_bottleneck(torch.cat(outs, dim=1))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        laterals = [conv(f) for conv, f in zip(self.lateral, feats[:-1])]
        laterals.append(self._psp(feats[-1]))
        for i in range(len(laterals) - 1, 0, -1):  # top-down
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(l) for conv, l in zip(self.fpn_convs, laterals[:-1])] + [laterals[-1]]
        size = outs[0].shape[-2:]
        fused = self.fuse(torch.cat([_resize(o, size) for o in outs], dim=1))
        return self.classifier(self.dropout(fused))
