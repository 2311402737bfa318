"""MSA-only merging, the SPM ablation that keeps Multi-Scale Aggregation and drops Guided Local Enhancement::

    (B, H, W, C_in) -> MSA (stride 1, C_in -> C_out) -> zero-pad odd H, W -> conv 2x2 stride 2 (C_out -> C_out)
    -> norm (the model's norm, LayerNorm in PVT) -> (B, ceil(H/2), ceil(W/2), C_out)

The second half is PVT v1's baseline downsampling (``proj`` + ``norm``, as in its patch embedding).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.layers.msa import MultiScaleAggregation
from spmkit.registry import MERGING


@MERGING.register("msa_only")
class MSAOnlyMerging(nn.Module):
    """MSA followed by the baseline 2x2 stride-2 conv and norm."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        kernel_sizes: tuple[int, ...] = (3, 5, 7, 9),
        expand_ratio: int = 2,
        norm_layer: Callable[..., nn.Module] | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        norm_layer = norm_layer or nn.LayerNorm
        self.msa = MultiScaleAggregation(in_dim, out_dim, kernel_sizes=kernel_sizes, expand_ratio=expand_ratio, **f)
        self.proj = nn.Conv2d(out_dim, out_dim, kernel_size=2, stride=2, **f)
        self.norm = norm_layer(out_dim, **f)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.stride = 2

    def init_weights(self) -> None:
        self.msa.init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C_in) -> (B, ceil(H/2), ceil(W/2), C_out)``."""
        x = self.msa(x.permute(0, 3, 1, 2))  # [B, C_out, H, W]
        h, w = x.shape[2], x.shape[3]
        if h % 2 or w % 2:
            x = F.pad(x, (0, w % 2, 0, h % 2))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, stride=2"
