"""Patch embedding stem: one strided conv (non-overlapping 4x4 or overlapping 7x7/s4) and a norm."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from spmkit.layers.conv_embed import ConvEmbed
from spmkit.registry import STEMS


@STEMS.register("patch_embed")
class PatchEmbed(ConvEmbed):
    """``(B, C, H, W)`` image -> ``(B, ceil(H/s), ceil(W/s), out_dim)`` NHWC.

    ``patch_size`` is the conv kernel, ``stride`` defaults to it (Swin, PVT v1); PVT v2 uses
    ``patch_size: 7, stride: 4, padding: 3``. Inputs whose size is not a multiple of the stride are
    padded at the bottom/right (``odd_size: floor``: the last rows/columns that do not fill a stride are
    dropped, as GLNet's release does). ``norm_eps`` set: a plain LayerNorm with that eps instead of the
    model norm.
    """

    def __init__(
        self,
        in_chans: int,
        out_dim: int,
        norm_layer: type[nn.Module],
        patch_size: int = 4,
        stride: int | None = None,
        padding: int = 0,
        norm: bool = True,
        norm_eps: float | None = None,
        odd_size: Literal["pad", "floor"] = "pad",
        device=None,
        dtype=None,
    ) -> None:
        stride = stride or patch_size
        super().__init__(in_chans, out_dim, patch_size, stride, padding, norm_layer, norm, norm_eps, device, dtype,
                         odd_size=odd_size)
        self.reduction = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)
