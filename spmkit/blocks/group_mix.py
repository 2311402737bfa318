"""GroupMixFormer's block: conv position encoding, then a pre-norm transformer block."""

from __future__ import annotations

from typing import Callable

import torch
from timm.layers import DropPath
from torch import nn

from spmkit.layers.tokens import nchw_to_tokens, tokens_to_nchw
from spmkit.registry import BLOCKS


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act_layer: Callable[[], nn.Module], *, device=None, dtype=None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, device=device, dtype=dtype)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden, dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _ConvPosEnc(nn.Module):
    def __init__(self, dim: int, kernel: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return x + nchw_to_tokens(self.proj(tokens_to_nchw(x, hw)))


@BLOCKS.register("group_mix")
class GroupMixBlock(nn.Module):
    """``x += dwconv_k(x)``; ``x += DP(mixer(norm1 x))``; ``x += DP(mlp(norm2 x))`` (GroupMixFormer's GMA block).

    Names follow the release (``cpe.proj``, ``norm1``, ``att``, ``norm2``, ``mlp.fc1/fc2``) so its
    block weights load directly. Works with any mixer; ``mixer: null`` keeps the cpe and MLP only.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        drop_path: float,
        mixer: nn.Module | None,
        *,
        norm_layer: Callable[..., nn.Module],
        act_layer: Callable[[], nn.Module] = nn.GELU,
        cpe_kernel: int = 3,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if cpe_kernel < 1 or cpe_kernel % 2 == 0:
            raise ValueError(f"group_mix block cpe_kernel must be a positive odd number, got {cpe_kernel}.")
        dd = dict(device=device, dtype=dtype)
        self.cpe = _ConvPosEnc(dim, cpe_kernel, **dd)
        self.norm1 = norm_layer(dim, **dd) if mixer is not None else None
        self.att = mixer
        self.norm2 = norm_layer(dim, **dd)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio), act_layer, **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = self.cpe(x, hw)
        if self.att is not None:
            x = x + self.drop_path(self.att(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x)))
