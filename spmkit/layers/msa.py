"""Multi-Scale Aggregation (MSA), the first step of Stepwise Patch Merging (Yu et al., IJCAI 2025).

Stride 1, changes channels ``C_in -> C_out``, no residual::

    x (B, C_in, H, W)
      split into n contiguous groups of C_in/n channels        (n = len(kernel_sizes), default 4)
      group i -> depthwise conv k_i x k_i (bias), padding k_i//2   (k = 3, 5, 7, 9)
      interleave: channel n*d + i <- group i, channel d
      proj: 1x1 conv C_in -> e*C_in, groups C_in/n  (each group sees one channel of every scale)
            BatchNorm2d, GELU, 1x1 conv e*C_in -> C_out (bias)
    -> (B, C_out, H, W)

Parameter names follow the official module (``local_conv_3``, ``proj.0``, ``proj.1``, ``proj.3``), so
official state_dicts load unchanged. Unlike the official code, the interleave is one ``torch.stack``
(no concatenation grown in a loop) and the last 1x1 conv runs as one matrix product on the
channels-last map. The depthwise convs stay separate calls: merging them into one 9x9 conv would
multiply the work of the small kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.layers.depthwise import DepthwiseConv2d
from spmkit.layers.init import init_conv_fan_out

#: the paper's defaults, shared by every merging layer built on MSA (``spm``, ``msa_only``)
MSA_KERNEL_SIZES: tuple[int, ...] = (3, 5, 7, 9)
MSA_EXPAND_RATIO = 2


class MultiScaleAggregation(nn.Module):
    """MSA: multi-scale depthwise convs, channel interleave, grouped 1x1 expansion, 1x1 projection.

    Input is NCHW (any memory format); output is NCHW with channels-last memory (an NHWC tensor
    permuted), which is what the guided local enhancement that follows reads fastest.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        kernel_sizes: tuple[int, ...] = MSA_KERNEL_SIZES,
        expand_ratio: int = MSA_EXPAND_RATIO,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not kernel_sizes:
            raise ValueError("kernel_sizes must name at least one kernel size, e.g. [3, 5, 7, 9].")
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes) or len(set(kernel_sizes)) != len(kernel_sizes):
            raise ValueError(
                f"kernel_sizes must be distinct odd positive integers (each keeps the map size with "
                f"padding k//2 and names a parameter local_conv_k); got {list(kernel_sizes)}."
            )
        n = len(kernel_sizes)
        if in_dim % n != 0:
            raise ValueError(
                f"multi-scale aggregation splits the input channels into {n} equal groups (one per kernel "
                f"size {list(kernel_sizes)}), so in_dim must be divisible by {n}; got in_dim={in_dim}."
            )
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be a positive integer; got {expand_ratio}.")
        f = {"device": device, "dtype": dtype}
        self.in_dim, self.out_dim = in_dim, out_dim
        self.kernel_sizes = kernel_sizes
        self.num_kernels = n
        self.local_dim = in_dim // n
        for k in kernel_sizes:
            conv = DepthwiseConv2d(self.local_dim, self.local_dim, k, padding=k // 2, groups=self.local_dim, **f)
            setattr(self, f"local_conv_{k}", conv)
        hidden = in_dim * expand_ratio
        self.proj = nn.Sequential(
            nn.Conv2d(in_dim, hidden, 1, groups=self.local_dim, **f),
            nn.BatchNorm2d(hidden, **f),
            nn.GELU(),
            nn.Conv2d(hidden, out_dim, 1, **f),
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: conv weights N(0, sqrt(2 / fan_out)), fan_out = k*k*out/groups; biases zero."""
        self.apply(init_conv_fan_out)

    def local_convs(self) -> list[nn.Conv2d]:
        return [getattr(self, f"local_conv_{k}") for k in self.kernel_sizes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, C_out, H, W)``."""
        x = x.contiguous(memory_format=torch.channels_last)
        groups = x.split(self.local_dim, dim=1)
        # interleave in channels-last memory: [B, H, W, C/n] x n -> [B, H, W, C/n, n] -> [B, H, W, C],
        # channel n*d + i is group i, channel d
        x = torch.stack([conv(groups[i]).permute(0, 2, 3, 1) for i, conv in enumerate(self.local_convs())], dim=-1)
        x = x.flatten(3).permute(0, 3, 1, 2)  # [B, C, H, W], channels-last memory
        expand, bn, act, out = self.proj
        x = act(bn(expand(x)))
        # the last 1x1 conv as one matrix product over channels-last tokens: [B, H, W, e*C] -> [B, H, W, C_out]
        x = F.linear(x.permute(0, 2, 3, 1), out.weight.flatten(1), out.bias)
        return x.permute(0, 3, 1, 2)
