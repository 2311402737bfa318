"""Conversions between ``(B, H*W, C)`` token sequences and ``(B, C, H, W)`` maps."""

from __future__ import annotations

import torch


def tokens_to_nchw(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``[B, H*W, C] -> [B, C, H, W]``; raises ``ValueError`` when ``N != H*W``."""
    b, n, c = x.shape
    h, w = hw
    if n != h * w:
        raise ValueError(f"got {n} tokens for a {h}x{w} map")
    return x.transpose(1, 2).reshape(b, c, h, w)


def nchw_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W] -> [B, H*W, C]``."""
    return x.flatten(2).transpose(1, 2)


def residual_conv_on_grid(x: torch.Tensor, hw: tuple[int, int], conv: torch.nn.Module) -> torch.Tensor:
    """``x + conv(x)`` on the ``H*W`` spatial tokens of ``[B, P + H*W, C]``; the ``P`` prefix tokens pass."""
    p = x.shape[1] - hw[0] * hw[1]
    prefix, grid = x[:, :p], x[:, p:]
    grid = grid + nchw_to_tokens(conv(tokens_to_nchw(grid, hw)))
    return torch.cat([prefix, grid], dim=1) if p else grid
