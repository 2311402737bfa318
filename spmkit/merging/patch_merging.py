"""Swin's patch merging: concatenate each 2x2 neighbourhood, norm, linear 4C -> out_dim."""

from __future__ import annotations

import torch
from torch import nn

from spmkit.layers.pad import pad_nhwc_to_multiple
from spmkit.registry import MERGING

torch.fx.wrap("pad_nhwc_to_multiple")  # opaque to FX symbolic tracing (see spmkit/layers/pad.py)


@MERGING.register("patch_merging")
class PatchMerging(nn.Module):
    """``(B, H, W, C)`` -> ``(B, ceil(H/2), ceil(W/2), out_dim)``; odd sizes are zero-padded.

    Concatenation order is Swin's: (0,0), (1,0), (0,1), (1,1) (row offset first), so Swin and timm
    weights load unchanged (``norm``, ``reduction``).
    """

    def __init__(self, in_dim: int, out_dim: int, norm_layer: type[nn.Module], device=None, dtype=None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.stride = 2
        self.norm = norm_layer(4 * in_dim, **dd)
        self.reduction = nn.Linear(4 * in_dim, out_dim, bias=False, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_nhwc_to_multiple(x, 2)
        B, H, W, C = x.shape
        # [B, H/2, 2(dy), W/2, 2(dx), C] -> [B, H/2, W/2, 2(dx), 2(dy), C] -> [B, H/2, W/2, 4C]
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))
