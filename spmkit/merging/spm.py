"""Stepwise Patch Merging (SPM, Yu et al., IJCAI 2025): Multi-Scale Aggregation, then Guided Local
Enhancement.

    (B, H, W, C_in) -> MSA (stride 1, C_in -> C_out) -> GLE (stride 2) -> (B, ceil(H/2), ceil(W/2), C_out)

Exactly the official module (``Yonghao-Yu/StepwisePatchMerging``, ``spm.py``) for even sizes, with the
official parameter names (``msa.local_conv_3``, ``msa.proj.0``, ``gle.gtg.0``, ``gle.attn.qkv``,
``gle.norm0``, ...) so official state_dicts load as they are. It computes less than the official code:
see ``spmkit.layers.msa`` and ``spmkit.layers.gle``. Odd sizes are handled (the official module crashes):
the guide conv gives ceil(H/2) natively and padded window tokens are masked out of the attention.
"""

from __future__ import annotations

import torch
from torch import nn

from spmkit.layers.gle import GLE_GUIDE_KERNEL, GLE_HEADS, GLE_WINDOW, GuidedLocalEnhancement
from spmkit.layers.msa import MSA_EXPAND_RATIO, MSA_KERNEL_SIZES, MultiScaleAggregation
from spmkit.registry import MERGING


@MERGING.register("spm")
class StepwisePatchMerging(nn.Module):
    """SPM merging layer. ``gle_heads`` must divide ``out_dim``; ``len(kernel_sizes)`` must divide ``in_dim``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        kernel_sizes: tuple[int, ...] = MSA_KERNEL_SIZES,
        expand_ratio: int = MSA_EXPAND_RATIO,
        gle_heads: int = GLE_HEADS,
        guide_kernel: int = GLE_GUIDE_KERNEL,
        window: int = GLE_WINDOW,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.msa = MultiScaleAggregation(in_dim, out_dim, kernel_sizes=kernel_sizes, expand_ratio=expand_ratio, **f)
        self.gle = GuidedLocalEnhancement(out_dim, num_heads=gle_heads, guide_kernel=guide_kernel, window=window, **f)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.stride = window

    def init_weights(self) -> None:
        self.msa.init_weights()
        self.gle.init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C_in) -> (B, ceil(H/2), ceil(W/2), C_out)``."""
        return self.gle(self.msa(x.permute(0, 3, 1, 2)))

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, stride={self.stride}"
