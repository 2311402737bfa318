"""Deformable Token Merging (DTM) of LIT (Pan et al., "Less is More: Pay Less Attention in Vision
Transformers", AAAI 2022), the official ``DeformablePatchMerging`` / ``DeformablePatchEmbed_GELU``::

    (B, H, W, C_in) -> zero-pad odd H, W -> deformable conv 2x2 stride 2 (offsets from a 2x2 stride-2 conv,
    8 channels, zero-initialised) -> BatchNorm2d -> GELU -> (B, ceil(H/2), ceil(W/2), C_out)

Parameter names follow LIT's code (``dconv.weight``, ``dconv.bias``, ``dconv.conv_offset.*``, ``norm_layer.*``).
LIT trains the offset conv with lr x 0.01 (``param_lr_scales``). Note: LIT's optimizer puts
``conv_offset.bias`` in its no-weight-decay group at the full lr (its grouping checks biases first); spmkit
scales both offset parameters, as the paper describes. With zero offsets the layer is exactly a plain
2x2 stride-2 conv; the sampling is ``torchvision.ops.deform_conv2d`` (bilinear, zero outside the map), which
runs in float32 under autocast (``spmkit.layers.precision``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import register_flop_formula
from torchvision.ops import deform_conv2d

from spmkit.layers.pad import pad_nhwc_to_multiple
from spmkit.layers.precision import float32_call
from spmkit.registry import MERGING

torch.fx.wrap("pad_nhwc_to_multiple")  # opaque to FX symbolic tracing (see spmkit/layers/pad.py)


def deform_conv2d_fp32(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       stride: int) -> torch.Tensor:
    """``deform_conv2d`` in float32 inside autocast and for a bf16/fp16 model (it has no bf16 kernel
    anywhere and no fp16 one on CPU). One call in an FX graph: the autocast check reads the device."""
    return float32_call(deform_conv2d, x, offset, weight, bias, stride=stride)


torch.fx.wrap("deform_conv2d_fp32")


def _deform_conv_flops(x_shape, w_shape, offset_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of torchvision's deformable conv as for a plain conv of its weight (2 per multiply-add);
    the bilinear sampling (4 reads and 3 multiply-adds per sampled value) is not counted."""
    n, c_out, h_out, w_out = out_shape
    return 2 * n * c_out * h_out * w_out * w_shape[1] * w_shape[2] * w_shape[3]


def _deform_conv_backward_flops(grad_shape, x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """Gradients w.r.t. input and weight: twice the forward convolution."""
    n, c_out, h_out, w_out = grad_shape
    return 4 * n * c_out * h_out * w_out * w_shape[1] * w_shape[2] * w_shape[3]


register_flop_formula(torch.ops.torchvision.deform_conv2d)(_deform_conv_flops)
register_flop_formula(torch.ops.torchvision._deform_conv2d_backward)(_deform_conv_backward_flops)


class DeformConv2dPack(nn.Module):
    """A deformable conv (DCN v1) that predicts its own offsets with a plain conv of the same geometry."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, stride: int, *, device=None, dtype=None) -> None:
        super().__init__()
        f = {"device": device, "dtype": dtype}
        self.kernel_size, self.stride = kernel_size, stride
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim, kernel_size, kernel_size, **f))
        self.bias = nn.Parameter(torch.empty(out_dim, **f))
        self.conv_offset = nn.Conv2d(in_dim, 2 * kernel_size * kernel_size, kernel_size, stride=stride, **f)
        self.init_weights()

    def init_weights(self) -> None:
        """As LIT: kaiming-uniform(a=sqrt 5) weight, uniform(+-1/sqrt(fan_in)) bias, zero offset conv."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        fan_in = self.weight.shape[1] * self.kernel_size * self.kernel_size
        nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.conv_offset(x)
        return deform_conv2d_fp32(x, offset, self.weight, self.bias, self.stride)


@MERGING.register("dtm")
class DeformableTokenMerging(nn.Module):
    """LIT's DTM: a 2x2 stride-2 deformable conv, BatchNorm2d and GELU; odd sizes are zero-padded."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        *,
        offset_lr_scale: float = 0.01,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if offset_lr_scale < 0:
            raise ValueError(f"offset_lr_scale must be >= 0 (a learning-rate multiplier); got {offset_lr_scale}.")
        f = {"device": device, "dtype": dtype}
        self.dconv = DeformConv2dPack(in_dim, out_dim, kernel_size=2, stride=2, **f)
        self.norm_layer = nn.BatchNorm2d(out_dim, **f)
        self.act_layer = nn.GELU()
        self.offset_lr_scale = offset_lr_scale
        self.in_dim, self.out_dim = in_dim, out_dim
        self.stride = 2
        self.init_weights()

    def init_weights(self) -> None:
        self.dconv.init_weights()
        nn.init.ones_(self.norm_layer.weight)
        nn.init.zeros_(self.norm_layer.bias)

    def param_lr_scales(self) -> dict[str, float]:
        """Local parameter names -> learning-rate multiplier: the offset conv learns 100x slower."""
        return {"dconv.conv_offset.weight": self.offset_lr_scale, "dconv.conv_offset.bias": self.offset_lr_scale}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C_in) -> (B, ceil(H/2), ceil(W/2), C_out)``."""
        x = self.dconv(pad_nhwc_to_multiple(x, 2).permute(0, 3, 1, 2))
        return self.act_layer(self.norm_layer(x)).permute(0, 2, 3, 1)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, stride=2"
