"""Conversions between ``(B, H*W, C)`` token sequences and ``(B, C, H, W)`` maps."""

from __future__ import annotations

import torch


def tokens_to_nchw(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """``[B, H*W, C] -> [B, C, H, W]``; raises ``ValueError`` when ``N != H*W`` (not checked under FX
    symbolic tracing, where sizes are unknown; the reshape still fails there)."""
    b, n, c = x.shape
    h, w = hw
    if not isinstance(n, torch.fx.Proxy) and n != h * w:
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
    return cat_prefix_tokens(prefix, grid)


def cat_prefix_tokens(prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``[B, P, C]`` and ``[B, N, C]`` -> ``[B, P + N, C]``; ``tokens`` itself (no copy) when ``P == 0``.
    Opaque to FX symbolic tracing (the ``if`` needs a concrete size): callers ``torch.fx.wrap`` it."""
    return torch.cat([prefix, tokens], dim=1) if prefix.shape[1] else tokens


def split_prefix_tokens(x: torch.Tensor, num_grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, P + num_grid, C]`` -> (``[B, P, C]``, ``[B, num_grid, C]``). With ``P == 0`` the prefix is a new
    empty tensor and the grid is ``x`` itself, so no empty slice keeps a large ``x`` alive. Opaque to FX."""
    p = x.shape[1] - num_grid
    if p:
        return x[:, :p], x[:, p:]
    return x.new_empty(x.shape[0], 0, x.shape[2]), x


torch.fx.wrap("cat_prefix_tokens")
torch.fx.wrap("split_prefix_tokens")
