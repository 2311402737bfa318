"""Depthwise convolutions on token maps (channels-last views): the same values as ``nn.Conv2d``, the same
state dict, traceable by FX, and channels-last output where no gradient is recorded (the layout hint)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spmkit.layers.depthwise import DepthwiseConv2d


def _pair(c: int = 16, k: int = 3, stride: int = 1) -> tuple[nn.Conv2d, DepthwiseConv2d]:
    ref = nn.Conv2d(c, c, k, stride, k // 2, groups=c)
    ours = DepthwiseConv2d(c, c, k, stride, k // 2, groups=c)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _token_map(b: int, c: int, h: int, w: int) -> torch.Tensor:
    return torch.randn(b, h * w, c).transpose(1, 2).reshape(b, c, h, w)  # a channels-last view, no copy


@pytest.mark.parametrize("batch,stride", [(1, 1), (3, 1), (2, 2)])
def test_same_values_as_conv2d_with_and_without_gradients(batch: int, stride: int) -> None:
    ref, ours = _pair(stride=stride)
    x = _token_map(batch, 16, 9, 7)
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref(xr).square().sum().backward()
    ours(xo).square().sum().backward()
    torch.testing.assert_close(xo.grad, xr.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-5)
    assert list(ours.state_dict()) == list(ref.state_dict())


def test_channels_last_output_in_inference_and_torch_choice_in_training() -> None:
    _, ours = _pair()
    x = _token_map(1, 16, 8, 8)
    with torch.inference_mode():
        out = ours(x)
    assert out.is_contiguous(memory_format=torch.channels_last)  # the hint reached the kernel
    contiguous_in = x.contiguous()
    with torch.no_grad():
        assert ours(contiguous_in).is_contiguous()  # an NCHW input stays NCHW


def test_traceable_by_fx() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = DepthwiseConv2d(8, 8, 3, 1, 1, groups=8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) + 1

    m = M()
    gm = torch.fx.symbolic_trace(m)
    x = _token_map(2, 8, 5, 5)
    torch.testing.assert_close(gm(x), m(x))
