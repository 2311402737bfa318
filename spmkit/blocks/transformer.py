"""The pre-norm transformer block every seed paper starts from."""

from __future__ import annotations

import torch
from torch import nn

from spmkit.layers.drop import DropPath
from spmkit.layers.mlp import Mlp
from spmkit.registry import BLOCKS


class LayerScale(nn.Module):
    """Per-channel learnable scale (CaiT), initialised to ``init_value``."""

    def __init__(self, dim: int, init_value: float, device=None, dtype=None) -> None:
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((dim,), init_value, device=device, dtype=dtype))

    def init_weights(self) -> None:
        nn.init.constant_(self.gamma, self.init_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


@BLOCKS.register("transformer")
class TransformerBlock(nn.Module):
    """``x + DP(LS(mixer(norm1(x)))); x + DP(LS(mlp(norm2(x))))``.

    With no mixer (a stage's ``mixer: null``) only the MLP branch exists: LIT's attention-free block.
    ``mlp_dwconv`` adds PVT v2's depthwise 3x3 conv inside the MLP. Names follow timm
    (``norm1``, ``attn``, ``norm2``, ``mlp.fc1`` ...) so Swin / PVT v2 weights load by name.
    """

    def __init__(
        self,
        dim: int,
        mlp_ratio: float,
        drop_path: float,
        mixer: nn.Module | None,
        norm_layer: type[nn.Module],
        act_layer: type[nn.Module],
        mlp_dwconv: bool = False,
        mlp_relu: bool = False,
        proj_drop: float = 0.0,
        layer_scale: float | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if mixer is not None:
            self.norm1: nn.Module | None = norm_layer(dim, **dd)
            self.attn: nn.Module | None = mixer
            self.ls1: nn.Module = LayerScale(dim, layer_scale, **dd) if layer_scale else nn.Identity()
        else:
            self.norm1 = self.attn = None
            self.ls1 = nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 and mixer is not None else nn.Identity()
        self.norm2 = norm_layer(dim, **dd)
        hidden = int(dim * mlp_ratio)
        self.mlp = Mlp(dim, hidden, act_layer=act_layer, drop=proj_drop, dwconv=mlp_dwconv, extra_relu=mlp_relu, **dd)
        self.ls2 = LayerScale(dim, layer_scale, **dd) if layer_scale else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.mlp_dwconv = mlp_dwconv

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        if self.attn is not None:
            x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), hw)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x), hw)))
