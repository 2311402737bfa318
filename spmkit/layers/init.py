"""The model-wide weight initialisation the backbone applies before components' own ``init_weights``."""

from __future__ import annotations

from timm.layers import trunc_normal_
from torch import nn


def init_linear_and_norm(module: nn.Module) -> None:
    """trunc-normal(0.02) Linear weights with zero bias, LayerNorm ones/zeros (ViT/Swin/PVT convention)."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
