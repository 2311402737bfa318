"""GroupMixFormer's block: a conv position encoding in front of the pre-norm transformer block."""

from __future__ import annotations

import functools

import torch
from torch import nn

from spmkit.blocks.transformer import TransformerBlock
from spmkit.layers.tokens import residual_conv_on_grid
from spmkit.registry import BLOCKS


class ConvPosEnc(nn.Module):
    """``x + dwconv_k(x)`` on the spatial tokens (prefix tokens pass unchanged)."""

    def __init__(self, dim: int, kernel: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return residual_conv_on_grid(x, hw, self.proj)


@BLOCKS.register("group_mix")
class GroupMixBlock(TransformerBlock):
    """``x += dwconv_k(x)`` (``cpe``), then the ``transformer`` block: ``x += DP(mixer(norm1 x));
    x += DP(mlp(norm2 x))`` -- GroupMixFormer's GMA block, usable with any mixer.

    ``norm_eps`` set: the block's two norms are plain LayerNorms with that eps (GroupMixFormer: 1e-6,
    while its final norm is BatchNorm) instead of the model norm. Names are the ``transformer`` block's
    plus ``cpe.proj`` (the release calls the mixer ``att`` where spmkit says ``attn``).
    """

    def __init__(
        self,
        dim: int,
        mlp_ratio: float,
        drop_path: float,
        mixer: nn.Module | None,
        norm_layer: type[nn.Module],
        act_layer: type[nn.Module],
        cpe_kernel: int = 3,
        norm_eps: float | None = None,
        layer_scale: float | None = None,
        device=None,
        dtype=None,
    ) -> None:
        if cpe_kernel < 1 or cpe_kernel % 2 == 0:
            raise ValueError(f"group_mix block cpe_kernel must be a positive odd number, got {cpe_kernel}.")
        if norm_eps is not None:
            norm_layer = functools.partial(nn.LayerNorm, eps=norm_eps)
        super().__init__(
            dim, mlp_ratio, drop_path, mixer, norm_layer, act_layer, layer_scale=layer_scale, device=device, dtype=dtype
        )
        self.cpe = ConvPosEnc(dim, cpe_kernel, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return super().forward(self.cpe(x, hw), hw)
