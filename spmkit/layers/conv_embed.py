"""A strided conv + norm over NCHW input with NHWC output, padded so the output is ``ceil(size / stride)``
(``odd_size: floor``: not padded, ``floor``, as the official code of some releases does).

Shared by the ``patch_embed`` stem and the ``conv`` merging layer; parameter names ``proj`` and ``norm``
follow timm and the PVT code, so their weights load by name.
"""

from __future__ import annotations

import torch
from torch import nn

from spmkit.layers.pad import pad_nchw_for_ceil_conv

torch.fx.wrap("pad_nchw_for_ceil_conv")  # opaque to FX symbolic tracing (see spmkit/layers/pad.py)


class ConvEmbed(nn.Module):
    """``(B, C, H, W)`` -> ``(B, ceil(H/s), ceil(W/s), out_dim)``: conv(kernel, stride, padding), then a norm.

    ``norm_eps`` set: a plain LayerNorm with that eps instead of ``norm_layer`` (the PVT papers use 1e-5
    in their embeddings while their blocks use 1e-6); ``norm=False``: no norm.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, padding: int,
                 norm_layer: type[nn.Module], norm: bool = True, norm_eps: float | None = None,
                 device=None, dtype=None, *, odd_size: str = "pad") -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if kernel < stride:
            raise ValueError(f"kernel size {kernel} is smaller than stride {stride}: pixels would be skipped")
        if padding * 2 >= kernel + stride:
            raise ValueError(f"padding {padding} is too large for kernel size {kernel} and stride {stride}")
        if odd_size not in ("pad", "floor"):
            raise ValueError(f"odd_size must be 'pad' or 'floor', got {odd_size!r}")
        self.kernel, self.conv_stride, self.padding = kernel, stride, padding
        self.odd_size = odd_size
        self.proj = nn.Conv2d(in_dim, out_dim, kernel, stride, padding, **dd)
        if not norm:
            self.norm: nn.Module = nn.Identity()
        elif norm_eps is not None:
            self.norm = nn.LayerNorm(out_dim, eps=norm_eps, **dd)
        else:
            self.norm = norm_layer(out_dim, **dd)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.odd_size == "pad":  # "floor": the conv drops the last row / column as the releases do
            x = pad_nchw_for_ceil_conv(x, self.kernel, self.conv_stride, self.padding)
        return self.norm(self.proj(x).permute(0, 2, 3, 1))
