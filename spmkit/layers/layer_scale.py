"""Per-channel learnable scaling of a residual branch (CaiT / ConvNeXt layer scale)."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiplies by ``gamma`` (init ``init_value``) along ``channel_dim`` (-1 channels-last, 1 NCHW)."""

    def __init__(self, dim: int, init_value: float = 1e-4, channel_dim: int = -1, *, device=None, dtype=None) -> None:
        super().__init__()
        self.init_value = init_value
        self.channel_dim = channel_dim
        self.gamma = nn.Parameter(torch.empty(dim, device=device, dtype=dtype))
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.constant_(self.gamma, self.init_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim in (-1, x.ndim - 1):
            return x * self.gamma
        shape = [1] * x.ndim
        shape[self.channel_dim] = -1
        return x * self.gamma.view(shape)
