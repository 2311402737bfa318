"""Stochastic depth (drop path) rates."""

from __future__ import annotations

from timm.layers import DropPath

__all__ = ["DropPath", "drop_path_rates"]


def drop_path_rates(rate: float, depths: list[int]) -> list[list[float]]:
    """Linear rule over all blocks (0 at the first, ``rate`` at the last), split per stage."""
    total = sum(depths)
    flat = [rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, start = [], 0
    for d in depths:
        out.append(flat[start : start + d])
        start += d
    return out
