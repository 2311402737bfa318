"""Plain strided-conv merging: PVT v1's 2x2/s2 and PVT v2's overlapping 3x3/s2, then a norm."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from spmkit.layers.conv_embed import ConvEmbed
from spmkit.registry import MERGING


@MERGING.register("conv")
class ConvMerging(ConvEmbed):
    """``(B, H, W, in_dim)`` -> ``(B, ceil(H/s), ceil(W/s), out_dim)``: conv k/s/p then LayerNorm.

    Odd sizes are padded at the bottom/right so the output is always ``ceil(H / stride)``; ``odd_size:
    floor`` leaves them unpadded (``floor``), as PVT v1's release does.
    ``norm_eps`` set: a plain LayerNorm with that eps (the PVT papers use 1e-5 here) instead of the model norm.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        norm_layer: type[nn.Module],
        kernel_size: int = 2,
        stride: int = 2,
        padding: int = 0,
        norm: bool = True,
        norm_eps: float | None = None,
        odd_size: Literal["pad", "floor"] = "pad",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_dim, out_dim, kernel_size, stride, padding, norm_layer, norm, norm_eps, device, dtype,
                         odd_size=odd_size)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x.permute(0, 3, 1, 2))
