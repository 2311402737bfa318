"""Activations a blueprint can name in ``act: ...`` (classes, instantiated without arguments)."""

from __future__ import annotations

from torch import nn

from spmkit.registry import ACTS

for _name, _cls in {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "identity": nn.Identity,
}.items():
    ACTS.register(_name)(_cls)
