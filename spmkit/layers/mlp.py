"""The transformer MLP over tokens, optionally with PVT v2's depthwise 3x3 conv after ``fc1``."""

from __future__ import annotations

import torch
from torch import nn


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
            nn.Conv2d(hidden_features, hidden_features, 3, 1, 1, groups=hidden_features, **dd) if dwconv else None
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
            P = N - H * W
            prefix = None
            if P:  # slice only when needed: an empty slice would keep fc1's wide output alive
                prefix, x = x[:, :P], x[:, P:]
            x = self.relu(x)
            x = self.dwconv(x.transpose(1, 2).reshape(B, C, H, W)).flatten(2).transpose(1, 2)
            if prefix is not None:
                x = torch.cat([prefix, x], dim=1)
        x = self.drop1(self.act(x))
        return self.drop2(self.fc2(x))
