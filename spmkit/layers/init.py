"""The model-wide weight initialisation the backbone applies before components' own ``init_weights``."""

from __future__ import annotations

import math

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


def init_conv_fan_out(module: nn.Module) -> None:
    """Conv weights N(0, sqrt(2 / fan_out)) with fan_out = k*k*out_channels/groups, zero biases (PVT v2, SPM)."""
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
