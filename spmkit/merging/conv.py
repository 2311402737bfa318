"""Plain strided-conv merging: PVT v1's 2x2/s2 and PVT v2's overlapping 3x3/s2, then a norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.layers.pad import ceil_conv_extra_pad
from spmkit.registry import MERGING


@MERGING.register("conv")
class ConvMerging(nn.Module):
    """``(B, H, W, in_dim)`` -> ``(B, ceil(H/s), ceil(W/s), out_dim)``: conv k/s/p then LayerNorm.

    Odd sizes are padded at the bottom/right so the output is always ``ceil(H / stride)``.
    ``norm_eps`` set: a plain LayerNorm with that eps (the PVT papers use 1e-5 here) instead of the model norm.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        norm_layer: type[nn.Module],
        kernel_size: int = 2,
        stride: int = 2,
        padding: int = 0,
        norm: bool = True,
        norm_eps: float | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if kernel_size < stride:
            raise ValueError(f"kernel_size {kernel_size} is smaller than stride {stride}: pixels would be skipped")
        if padding * 2 >= kernel_size + stride:
            raise ValueError(f"padding {padding} is too large for kernel_size {kernel_size}")
        self.kernel, self.stride, self.padding = kernel_size, stride, padding
        self.proj = nn.Conv2d(in_dim, out_dim, kernel_size, stride, padding, **dd)
        if not norm:
            self.norm: nn.Module = nn.Identity()
        elif norm_eps is not None:
            self.norm = nn.LayerNorm(out_dim, eps=norm_eps, **dd)
        else:
            self.norm = norm_layer(out_dim, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        ph = ceil_conv_extra_pad(x.shape[2], self.kernel, self.stride, self.padding)
        pw = ceil_conv_extra_pad(x.shape[3], self.kernel, self.stride, self.padding)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))
