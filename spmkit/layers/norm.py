"""Norm layers a blueprint can name in ``norm: {type: ..., eps: ...}``.

Each entry is a factory ``(num_features, eps=..., device=None, dtype=None) -> nn.Module``; the builder
binds the blueprint's parameters and hands the result to components as ``norm_layer``.
"""

from __future__ import annotations

import torch
from torch import nn

from spmkit.registry import NORMS


@NORMS.register("layernorm")
class LayerNorm(nn.LayerNorm):
    """LayerNorm over the last (channel) dimension of tokens or NHWC maps."""

    def __init__(self, num_features: int, eps: float = 1e-6, affine: bool = True, device=None, dtype=None) -> None:
        super().__init__(num_features, eps=eps, elementwise_affine=affine, device=device, dtype=dtype)


@NORMS.register("layernorm2d")
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an NCHW map."""

    def __init__(self, num_features: int, eps: float = 1e-6, affine: bool = True, device=None, dtype=None) -> None:
        super().__init__(num_features, eps=eps, elementwise_affine=affine, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@NORMS.register("batchnorm")
class BatchNormTokens(nn.BatchNorm1d):
    """BatchNorm over the channel (last) dimension of tokens ``(B, N, C)`` or NHWC maps."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, device=None, dtype=None) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        """Always 2-D after the reshape; BatchNorm1d's ``if input.dim()`` check would stop FX tracing."""
