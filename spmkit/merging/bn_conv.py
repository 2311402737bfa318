"""GLNet's transitions between stages: BatchNorm and a strided conv, in either order."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from spmkit.layers.pad import pad_nchw_for_ceil_conv
from spmkit.registry import MERGING

torch.fx.wrap("pad_nchw_for_ceil_conv")  # opaque to FX symbolic tracing (see spmkit/layers/pad.py)


@MERGING.register("bn_conv")
class BNConvMerging(nn.Module):
    """``[B, H, W, C_in] -> [B, ceil(H/2), ceil(W/2), C_out]``.

    ``order: norm_proj`` is GLNet-STL's ``BN(C_in) -> conv 2x2 s2``; ``proj_norm`` with
    ``kernel_size: 3`` is GLNet-4G's ``conv 3x3 s2 p1 -> BN(C_out)``. Even kernels use no padding and
    pad odd inputs on the bottom/right; odd kernels pad ``k // 2``. ``odd_size: floor`` drops a last odd
    row/column instead of padding (the release's ``nn.Conv2d`` alone), giving ``floor`` sizes.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        order: Literal["norm_proj", "proj_norm"] = "norm_proj",
        kernel_size: int = 2,
        odd_size: Literal["pad", "floor"] = "pad",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if kernel_size < 2:
            raise ValueError(f"bn_conv needs kernel_size >= 2 to downsample by 2, got {kernel_size}.")
        dd = dict(device=device, dtype=dtype)
        self.stride = 2
        self.order = order
        self.kernel_size = kernel_size
        if odd_size not in ("pad", "floor"):
            raise ValueError(f"bn_conv odd_size must be 'pad' or 'floor', got {odd_size!r}.")
        self.odd_size = odd_size
        self.norm = nn.BatchNorm2d(in_dim if order == "norm_proj" else out_dim, **dd)
        pad = kernel_size // 2 if kernel_size % 2 else 0
        self.proj = nn.Conv2d(in_dim, out_dim, kernel_size, 2, pad, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        if self.order == "norm_proj":
            x = self.norm(x)
        if self.odd_size == "pad":
            x = pad_nchw_for_ceil_conv(x, self.kernel_size, 2, self.proj.padding[0])
        x = self.proj(x)
        if self.order == "proj_norm":
            x = self.norm(x)
        return x.permute(0, 2, 3, 1)
