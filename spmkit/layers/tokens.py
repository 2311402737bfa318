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
