"""GLE-only merging, the SPM ablation that drops Multi-Scale Aggregation and keeps Guided Local Enhancement::

    (B, H, W, C_in) -> proj: 1x1 conv C_in -> C_out (bias) -> GLE (stride 2) -> (B, ceil(H/2), ceil(W/2), C_out)

``proj`` is initialised like MSA's convs (normal, std sqrt(2 / fan_out)); GLE as in SPM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.layers.gle import GLE_GUIDE_KERNEL, GLE_HEADS, GLE_WINDOW, GuidedLocalEnhancement
from spmkit.layers.init import init_conv_fan_out
from spmkit.registry import MERGING


@MERGING.register("gle_only")
class GLEOnlyMerging(nn.Module):
    """A 1x1 projection to ``out_dim``, then GLE. ``gle_heads`` must divide ``out_dim``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        gle_heads: int = GLE_HEADS,
        guide_kernel: int = GLE_GUIDE_KERNEL,
        window: int = GLE_WINDOW,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.proj = nn.Conv2d(in_dim, out_dim, kernel_size=1, **f)
        self.gle = GuidedLocalEnhancement(out_dim, num_heads=gle_heads, guide_kernel=guide_kernel, window=window, **f)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.stride = window
        self.init_weights()

    def init_weights(self) -> None:
        init_conv_fan_out(self.proj)  # 1x1 conv: fan_out = out_dim, as MSA's convs
        self.gle.init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C_in) -> (B, ceil(H/w), ceil(W/w), C_out)``."""
        x = F.linear(x, self.proj.weight.flatten(1), self.proj.bias)  # the 1x1 conv on channels-last tokens
        return self.gle(x.permute(0, 3, 1, 2))

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, stride={self.stride}"
