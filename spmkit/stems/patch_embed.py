"""Patch embedding stem: one strided conv (non-overlapping 4x4 or overlapping 7x7/s4) and a norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.layers.pad import ceil_conv_extra_pad
from spmkit.registry import STEMS


@STEMS.register("patch_embed")
class PatchEmbed(nn.Module):
    """``(B, C, H, W)`` image -> ``(B, ceil(H/s), ceil(W/s), out_dim)`` NHWC.

    ``patch_size`` is the conv kernel, ``stride`` defaults to it (Swin, PVT v1); PVT v2 uses
    ``patch_size: 7, stride: 4, padding: 3``. Inputs whose size is not a multiple of the stride are
    padded at the bottom/right. ``norm_eps`` set: a plain LayerNorm with that eps instead of the model norm.
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
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        stride = stride or patch_size
        if padding * 2 >= patch_size + stride:
            raise ValueError(f"padding {padding} is too large for patch_size {patch_size} and stride {stride}")
        self.kernel, self.reduction, self.padding = patch_size, stride, padding
        self.proj = nn.Conv2d(in_chans, out_dim, patch_size, stride, padding, **dd)
        if not norm:
            self.norm: nn.Module = nn.Identity()
        elif norm_eps is not None:
            self.norm = nn.LayerNorm(out_dim, eps=norm_eps, **dd)
        else:
            self.norm = norm_layer(out_dim, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph = ceil_conv_extra_pad(x.shape[2], self.kernel, self.reduction, self.padding)
        pw = ceil_conv_extra_pad(x.shape[3], self.kernel, self.reduction, self.padding)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))
