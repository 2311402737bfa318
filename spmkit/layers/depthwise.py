"""A depthwise ``nn.Conv2d`` that keeps a channels-last input channels-last.

Token sequences ``(B, H*W, C)`` viewed as maps (``x.transpose(1, 2).reshape(B, C, H, W)``, no copy) are
channels-last strided. Given such a map and an ordinary (contiguous) depthwise weight, PyTorch's CPU
convolution may copy the map to NCHW and take a slow path (measured at batch 1: 20 ms instead of 1.3 ms
for a 512-channel 56x56 map, plus a second copy back for the next linear layer). With the weight in
channels-last format as well, the convolution reads and writes channels-last. The result is the same
convolution (float rounding aside); parameters and state-dict keys are those of ``nn.Conv2d``. Which
kernel runs is torch's choice and may change between versions; only the layout hint is ours.

The hint is given only where no autograd graph is recorded (evaluation, inference, export): there it was
never measurably slower at batch >= 2 and 10-20x faster at batch 1; with gradients (training) the
backward pass was as often slower as faster, so training keeps torch's own choice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv2d_keep_layout(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, ...],
                       padding: tuple[int, ...] | str, dilation: tuple[int, ...], groups: int) -> torch.Tensor:
    """``F.conv2d`` with the weight in channels-last format when ``x`` is channels-last (not NCHW) strided
    and no gradient is recorded. Opaque to FX symbolic tracing (the layout test needs a real tensor)."""
    grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if not grad and x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        weight = weight.to(memory_format=torch.channels_last)
    return F.conv2d(x, weight, bias, stride, padding, dilation, groups)


torch.fx.wrap("conv2d_keep_layout")


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(channels, channels, k, groups=channels, ...)`` that keeps channels-last inputs so."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros":
            return super().forward(x)
        return conv2d_keep_layout(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
