"""PVT spatial-reduction attention (the lead's ``sra`` mixer) against a reference written step by step."""

import math

import pytest
import torch
import torch.nn.functional as F

from spmkit.mixers.sra import SpatialReductionAttention
from _mixer_checks import MAP_SIZES, assert_grads_reach_every_parameter


def naive_sra(m: SpatialReductionAttention, x: torch.Tensor, hw) -> torch.Tensor:
    b, n, c = x.shape
    h, w = hw
    p = n - h * w
    heads, d = m.num_heads, c // m.num_heads
    q = x @ m.q.weight.t() + m.q.bias
    kv_in = x
    if m.sr is not None:
        grid = x[:, p:].transpose(1, 2).reshape(b, c, h, w)
        if m.linear:
            grid = F.adaptive_avg_pool2d(grid, m.pool.output_size)
            red = F.conv2d(grid, m.sr.weight, m.sr.bias)
        else:
            r = m.sr_ratio
            grid = F.pad(grid, (0, max(0, r - w), 0, max(0, r - h)))
            red = F.conv2d(grid, m.sr.weight, m.sr.bias, stride=r)
        red = F.layer_norm(red.flatten(2).transpose(1, 2), (c,), m.norm.weight, m.norm.bias, m.norm.eps)
        if m.linear:
            red = F.gelu(red)
        kv_in = torch.cat([x[:, :p], red], 1)
    k, v = (kv_in @ m.kv.weight.t() + m.kv.bias).split(c, -1)
    q, k, v = (t.reshape(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1)
    return m.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize("hw", MAP_SIZES + [(3, 5)])  # (3, 5): smaller than the reduction in one direction
@pytest.mark.parametrize("kind", ["sr1", "sr4", "linear"])
@pytest.mark.parametrize("prefix", [0, 1])
def test_shape_and_sdpa_equals_naive(hw, kind, prefix):
    torch.manual_seed(0)
    kw = {"sr1": dict(sr_ratio=1), "sr4": dict(sr_ratio=4), "linear": dict(linear=True, pool_size=3)}[kind]
    m = SpatialReductionAttention(16, 2, **kw).eval()
    x = torch.randn(2, prefix + hw[0] * hw[1], 16)
    out = m(x, hw)
    assert out.shape == x.shape
    torch.testing.assert_close(out, naive_sra(m, x, hw), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kw", [dict(sr_ratio=2), dict(linear=True)])
def test_grads_reach_every_parameter(kw):
    m = SpatialReductionAttention(16, 2, **kw)
    x = torch.randn(2, 1 + 7 * 9, 16)
    assert_grads_reach_every_parameter(m, m(x, (7, 9)))


def test_parameter_layout_is_pvt():
    m = SpatialReductionAttention(64, 1, sr_ratio=8, device="meta")
    assert tuple(m.sr.weight.shape) == (64, 64, 8, 8) and m.norm.eps == 1e-5
    lin = SpatialReductionAttention(64, 1, linear=True, device="meta")
    assert tuple(lin.sr.weight.shape) == (64, 64, 1, 1) and lin.pool.output_size == 7
