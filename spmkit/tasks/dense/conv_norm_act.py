"""Conv -> GroupNorm -> ReLU, the building unit of the segmentation heads (mmseg's ``ConvModule``).

GroupNorm rather than the papers' SyncBN: it behaves the same with any per-device batch size (the
pooled 1x1 maps of UperNet's PPM break BatchNorm at batch size 1) and needs no process group.
"""

from __future__ import annotations

import math

from torch import nn


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``groups`` that leaves >= 2 channels a group (so pooled
    1x1 maps still have several values to normalise over)."""
    return nn.GroupNorm(math.gcd(groups, max(1, channels // 2)), channels)


class ConvNormAct(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, groups: int = 32) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
            group_norm(out_ch, groups),
            nn.ReLU(inplace=True),
        )
