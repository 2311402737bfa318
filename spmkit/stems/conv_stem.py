"""Overlapping convolutional stems: two 3x3 stride-2 convs with BatchNorm (GroupMixFormer, GLNet-4G)."""

from __future__ import annotations

import torch
from torch import nn

from spmkit.layers.separable_conv import SeparableConv2d
from spmkit.registry import ACTS, STEMS


@STEMS.register("conv_stem")
class ConvStem(nn.Module):
    """``conv3x3 s2 -> BN -> act -> conv3x3 s2 -> BN [-> act]`` (stride 4), optionally followed by
    GroupMixFormer's stage-1 embed ``separable conv 3x3 s1 -> BN -> act`` (``embed: true``).

    GroupMixFormer: ``act: hardswish, final_act: true, embed: true``; GLNet-4G: ``act: gelu,
    final_act: false``. ``mid_dim`` defaults to ``out_dim // 2``. Convs keep their bias, as released.
    """

    def __init__(
        self,
        in_chans: int,
        out_dim: int,
        *,
        mid_dim: int | None = None,
        act: str = "gelu",
        final_act: bool = True,
        embed: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        mid = mid_dim or out_dim // 2
        if mid < 1:
            raise ValueError(f"conv_stem needs mid_dim >= 1, got {mid} (out_dim {out_dim}).")
        if act not in ACTS:
            raise ValueError(f"conv_stem act {act!r} is not a registered activation ({', '.join(ACTS.names())}).")
        act_cls = ACTS.get(act)
        dd = dict(device=device, dtype=dtype)
        self.reduction = 4
        self.proj1 = nn.Conv2d(in_chans, mid, 3, 2, 1, **dd)
        self.norm1 = nn.BatchNorm2d(mid, **dd)
        self.act1 = act_cls()
        self.proj2 = nn.Conv2d(mid, out_dim, 3, 2, 1, **dd)
        self.norm2 = nn.BatchNorm2d(out_dim, **dd)
        self.act2 = act_cls() if final_act else nn.Identity()
        if embed:
            self.embed = nn.Sequential()
            self.embed.add_module("proj", SeparableConv2d(out_dim, out_dim, 3, 1, 1, **dd))
            self.embed.add_module("norm", nn.BatchNorm2d(out_dim, **dd))
            self.embed.add_module("act", act_cls())
        else:
            self.embed = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, H/4, W/4, C]
        x = self.act1(self.norm1(self.proj1(x)))
        x = self.act2(self.norm2(self.proj2(x)))
        if self.embed is not None:
            x = self.embed(x)
        return x.permute(0, 2, 3, 1)
