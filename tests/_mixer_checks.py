"""Shared checks for the mixer tests (not collected: leading underscore)."""

from __future__ import annotations

import torch
from torch import nn

# square, non-square, and sizes that divide neither 7 (Swin's window) nor 8 (GLMix's slot grid)
MAP_SIZES = [(8, 8), (6, 10), (7, 9), (5, 13)]


def assert_grads_reach_every_parameter(module: nn.Module, out: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in module.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient reached: {missing}"
