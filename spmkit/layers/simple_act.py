"""Activations that a component picks by name where the paper fixes one (not the model-wide ``act``)."""

from __future__ import annotations

from typing import Literal

from torch import nn

ActName = Literal["gelu", "hardswish", "relu", "silu", "none"]

_ACTS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "none": nn.Identity,
}


def make_act(name: str) -> nn.Module:
    """A new activation module by name (``none`` is identity)."""
    return _ACTS[name]()
