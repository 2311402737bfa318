"""The transformer MLP over tokens, optionally with PVT v2's depthwise 3x3 conv after ``fc1``."""

from __future__ import annotations

import torch
from torch import nn

from spmkit.layers.depthwise import DepthwiseConv2d
from spmkit.layers.tokens import cat_prefix_tokens, split_prefix_tokens

torch.fx.wrap("cat_prefix_tokens")  # opaque to FX symbolic tracing (see spmkit/layers/tokens.py)
torch.fx.wrap("split_prefix_tokens")


class Mlp(nn.Module):
    """fc1 -> [dwconv 3x3 on the spatial tokens] -> act -> drop -> fc2 -> drop.

    With ``dwconv`` the input must be ``(B, P + H*W, C)``; the ``P`` prefix tokens skip the conv.
    Parameter names follow timm (``fc1``, ``dwconv``, ``fc2``) so timm weights load by name.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
        dwconv: bool = False,
        extra_relu: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.fc1 = nn.Linear(in_features, hidden_features, **dd)
        self.relu = nn.ReLU() if extra_relu else nn.Identity()
        self.dwconv = (
            DepthwiseConv2d(hidden_features, hidden_features, 3, 1, 1, groups=hidden_features, **dd) if dwconv
            else None
        )
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, in_features, **dd)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:
        x = self.fc1(x)
        if self.dwconv is not None:
            assert hw is not None, "Mlp with dwconv needs the feature map size"
            B, N, C = x.shape
            H, W = hw
            prefix, x = split_prefix_tokens(x, H * W)
            x = self.relu(x)
            x = self.dwconv(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
            x = cat_prefix_tokens(prefix, x)
        x = self.drop1(self.act(x))
        return self.drop2(self.fc2(x))
