"""Relative position indices into a ``(2H-1)(2W-1)`` bias table (Swin's windows, LIT-S's global attention)."""

from __future__ import annotations

import functools

import torch


def relative_position_index(h: int, w: int, device=None) -> torch.Tensor:
    """``(h*w, h*w)`` index of every (query, key) pair of an ``h x w`` grid into the bias table, row-major."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    ).flatten(1)  # [2, h*w]
    rel = coords[:, :, None] - coords[:, None, :]  # [2, hw, hw]
    return (rel[0] + h - 1) * (2 * w - 1) + (rel[1] + w - 1)


@functools.lru_cache(maxsize=64)
def _cached(h: int, w: int, device: str) -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor, so a later training step can save it for backward
        return relative_position_index(h, w, device=device)


def cached_relative_position_index(h: int, w: int, device: torch.device | str) -> torch.Tensor:
    """``relative_position_index`` computed once per size and device. Not a buffer: a buffer made at
    construction holds garbage after a meta-device build + ``to_empty()``. Not cached while a graph is
    captured: torch.export computes it on fake tensors, which must not outlive the trace."""
    if torch.compiler.is_compiling():
        return relative_position_index(h, w, device=device)
    return _cached(h, w, str(device))
