"""MSA-only merging, the SPM ablation that keeps Multi-Scale Aggregation and drops Guided Local Enhancement::

    (B, H, W, C_in) -> MSA (stride 1, C_in -> C_out) -> zero-pad odd H, W -> conv 2x2 stride 2 (C_out -> C_out)
    -> norm (the model's norm, LayerNorm in PVT) -> (B, ceil(H/2), ceil(W/2), C_out)

The second half is PVT v1's baseline downsampling (``proj`` + ``norm``, as in its patch embedding).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from spmkit.layers.conv_embed import ConvEmbed
from spmkit.layers.msa import MSA_EXPAND_RATIO, MSA_KERNEL_SIZES, MultiScaleAggregation
from spmkit.registry import MERGING


@MERGING.register("msa_only")
class MSAOnlyMerging(ConvEmbed):
    """MSA followed by the baseline 2x2 stride-2 conv and norm (``ConvEmbed``'s ``proj`` + ``norm``)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        kernel_sizes: tuple[int, ...] = MSA_KERNEL_SIZES,
        expand_ratio: int = MSA_EXPAND_RATIO,
        norm_layer: Callable[..., nn.Module] | None = None,
        device=None,
        dtype=None,
    ) -> None:
        f = {"device": device, "dtype": dtype}
        super().__init__(out_dim, out_dim, 2, 2, 0, norm_layer or nn.LayerNorm, **f)
        self.msa = MultiScaleAggregation(in_dim, out_dim, kernel_sizes=kernel_sizes, expand_ratio=expand_ratio, **f)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.stride = 2

    def init_weights(self) -> None:
        self.msa.init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C_in) -> (B, ceil(H/2), ceil(W/2), C_out)``."""
        return self.embed(self.msa(x.permute(0, 3, 1, 2)))

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, stride=2"
