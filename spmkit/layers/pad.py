"""Padding NHWC maps to a multiple of a size (odd detection inputs, windows) and NCHW maps for a ceil-mode conv.

The helpers that look at a tensor's shape are opaque to ``torch.fx`` symbolic tracing (torchvision's
``create_feature_extractor``): a traced shape is a proxy that cannot decide an ``if`` or a ``max``, so
each module that calls them wraps them (``torch.fx.wrap("name")`` at its top level; FX only patches the
caller's globals) and the trace records one call instead. torch.compile and torch.export trace through
them: their branches depend on the spatial size only, never on the batch.
"""

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


def pad_nchw_for_ceil_conv(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """Zero-pad the bottom/right of ``(B, C, H, W)`` so a conv(kernel, stride, padding) gives
    ``ceil(H/stride) x ceil(W/stride)`` positions; no copy when none is needed."""
    ph = ceil_conv_extra_pad(x.shape[2], kernel, stride, padding)
    pw = ceil_conv_extra_pad(x.shape[3], kernel, stride, padding)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x


def pad_nchw_to_at_least(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad the bottom/right of ``(B, C, H, W)`` to at least ``size x size``; no copy when it is."""
    ph, pw = max(0, size - x.shape[2]), max(0, size - x.shape[3])
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x
