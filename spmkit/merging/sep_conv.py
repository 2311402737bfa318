"""GroupMixFormer's stage embedding: separable conv 3x3 stride 2 + BatchNorm + Hardswish."""

from __future__ import annotations

import torch
from torch import nn

from spmkit.layers.separable_conv import SeparableConv2d
from spmkit.registry import ACTS, MERGING


@MERGING.register("sep_conv")
class SepConvMerging(nn.Module):
    """``[B, H, W, C_in] -> [B, ceil(H/2), ceil(W/2), C_out]``: depthwise 3x3 s2 (no bias), pointwise
    (no bias), BatchNorm, act. Names follow the release's ``PatchEmbedLayer`` (``proj.conv1``,
    ``proj.pointwise_conv``, ``norm``)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        stride: int = 2,
        kernel_size: int = 3,
        act: str = "hardswish",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or stride < 1:
            raise ValueError(f"sep_conv needs an odd kernel_size and stride >= 1, got {kernel_size} / {stride}.")
        if act not in ACTS:
            raise ValueError(f"sep_conv act {act!r} is not a registered activation ({', '.join(ACTS.names())}).")
        act_cls = ACTS.get(act)
        dd = dict(device=device, dtype=dtype)
        self.stride = stride
        self.proj = SeparableConv2d(in_dim, out_dim, kernel_size, stride, kernel_size // 2, **dd)
        self.norm = nn.BatchNorm2d(out_dim, **dd)
        self.act = act_cls()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(self.proj(x.permute(0, 3, 1, 2))))
        return x.permute(0, 2, 3, 1)
