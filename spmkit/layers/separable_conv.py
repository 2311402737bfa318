"""Depthwise-separable convolution (GroupMixFormer's aggregators and stage embeds)."""

from __future__ import annotations

import torch
from torch import nn

from spmkit.layers.depthwise import DepthwiseConv2d


class SeparableConv2d(nn.Module):
    """Depthwise ``k x k`` conv then pointwise ``1 x 1`` conv, both without bias by default.

    Submodule names (``conv1``, ``pointwise_conv``) follow the GroupMixFormer release so its
    state_dict keys line up.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = False,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        dd = dict(device=device, dtype=dtype)
        self.conv1 = DepthwiseConv2d(in_chans, in_chans, kernel_size, stride, padding, groups=in_chans, bias=bias, **dd)
        self.pointwise_conv = nn.Conv2d(in_chans, out_chans, 1, bias=bias, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C_in, H, W] -> [B, C_out, H/s, W/s]
        return self.pointwise_conv(self.conv1(x))
