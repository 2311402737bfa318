"""Padding NHWC maps to a multiple of a size (odd detection inputs, windows)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_nhwc_to_multiple(x: torch.Tensor, multiple_h: int, multiple_w: int | None = None) -> torch.Tensor:
    """Zero-pad the bottom/right of ``(B, H, W, C)`` so H and W are multiples; no copy when they already are."""
    multiple_w = multiple_h if multiple_w is None else multiple_w
    H, W = x.shape[1], x.shape[2]
    pad_h = (multiple_h - H % multiple_h) % multiple_h
    pad_w = (multiple_w - W % multiple_w) % multiple_w
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x


def ceil_conv_extra_pad(size: int, kernel: int, stride: int, padding: int) -> int:
    """Extra bottom/right padding that makes a conv output ``ceil(size / stride)`` positions."""
    target = -(-size // stride)
    return max(0, (target - 1) * stride + kernel - size - 2 * padding)
