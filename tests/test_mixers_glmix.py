import math

import pytest
import torch
import torch.nn.functional as F

from spmkit.blocks.glmix import GLNetBlock
from spmkit.mixers.global_attn import GlobalAttention
from spmkit.mixers.glmix import GLMix
from _mixer_checks import MAP_SIZES, assert_grads_reach_every_parameter


def naive_glmix(m: GLMix, x: torch.Tensor, hw, source=None) -> torch.Tensor:
    """Every step of the GLMix mixer written out: cosine logits, two softmaxes, per-head attention loop."""
    b, n, c = x.shape
    x_map = x.transpose(1, 2).reshape(b, c, *hw)
    if m.slot_init == "param":
        slots = m.init_slots.expand(b, -1, -1)
    else:
        src = x_map if source is None else source
        slots = F.adaptive_avg_pool2d(src, m.pool_size).flatten(2).transpose(1, 2)
    sn = slots / slots.norm(dim=-1, keepdim=True)
    xn = x / x.norm(dim=-1, keepdim=True)
    logits = m.slot_scale * sn @ xn.transpose(1, 2)  # [B, S, N]
    slots = torch.softmax(logits, dim=2) @ x
    mha = m.relation_mha
    qkv = slots @ mha.in_proj_weight.t() + mha.in_proj_bias
    q, k, v = qkv.split(c, -1)
    heads, d = mha.num_heads, c // mha.num_heads
    out = torch.zeros_like(slots)
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        a = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d), -1)
        out[..., sl] = a @ v[..., sl]
    slots = mha.out_proj(out)
    y = torch.softmax(logits.transpose(1, 2), dim=2) @ slots
    return y + m.feature_conv(x_map).flatten(2).transpose(1, 2)


@pytest.mark.parametrize("hw", MAP_SIZES)
@pytest.mark.parametrize("slot_init", ["ada_avgpool", "param"])
def test_shape_and_fused_equals_naive(hw, slot_init):
    torch.manual_seed(0)
    m = GLMix(32, 2, num_slots=16, slot_init=slot_init).eval()
    x = torch.randn(2, hw[0] * hw[1], 32)
    out = m(x, hw)
    assert out.shape == x.shape
    torch.testing.assert_close(out, naive_glmix(m, x, hw), atol=1e-5, rtol=1e-4)


def test_slot_source_is_used():
    torch.manual_seed(0)
    m = GLMix(16, 1, num_slots=4).eval()
    x, src = torch.randn(1, 36, 16), torch.randn(1, 16, 6, 6)
    torch.testing.assert_close(m(x, (6, 6), slot_source=src), naive_glmix(m, x, (6, 6), src), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(m(x, (6, 6), slot_source=src), m(x, (6, 6)))


def test_init_and_layout():
    m = GLMix(96, 3, device="meta")
    assert m.slot_scale.requires_grad and m.pool_size == 8 and m.init_slots is None
    assert tuple(m.relation_mha.in_proj_weight.shape) == (288, 96)  # nn.MultiheadAttention layout
    real = GLMix(96, 3)
    assert real.slot_scale.item() == pytest.approx(96**-0.5)
    assert GLMix(16, 1, local_kernel=0).feature_conv is None


def test_grads_reach_every_parameter():
    for init in ("ada_avgpool", "param"):
        m = GLMix(32, 2, num_slots=9, slot_init=init)
        x = torch.randn(2, 7 * 5, 32)
        assert_grads_reach_every_parameter(m, m(x, (7, 5)))


@pytest.mark.parametrize("hw", [(8, 8), (7, 11)])
def test_block_variants_shape_and_grads(hw):
    bn = lambda d, **k: torch.nn.LayerNorm(d, **k)  # noqa: E731
    for mixer, kw in [
        (GLMix(32, 1, num_slots=16), dict(cpe_kernel=3, mlp_dw=True, layer_scale=0.1)),
        (GlobalAttention(32, 1), dict(cpe_kernel=3, mlp_dw=True, norm_eps=1e-6)),
        (GlobalAttention(32, 1), dict(norm_eps=1e-6)),
        (None, {}),
    ]:
        blk = GLNetBlock(32, 1, 3.0, 0.1, mixer, norm_layer=bn, **kw)
        x = torch.randn(2, hw[0] * hw[1], 32)
        out = blk(x, hw)
        assert out.shape == x.shape
        assert_grads_reach_every_parameter(blk, out)


def test_block_passes_its_input_as_slot_source():
    torch.manual_seed(0)
    mixer = GLMix(16, 1, num_slots=4)
    blk = GLNetBlock(16, 1, 2.0, 0.0, mixer, norm_layer=torch.nn.LayerNorm, cpe_kernel=3).eval()
    x = torch.randn(1, 25, 16)
    seen = {}
    mixer.register_forward_hook(lambda mod, args, kwargs, out: seen.update(kwargs), with_kwargs=True)
    blk(x, (5, 5))
    torch.testing.assert_close(seen["slot_source"], x.transpose(1, 2).reshape(1, 16, 5, 5))


def test_bad_config_errors():
    with pytest.raises(ValueError, match="square"):
        GLMix(16, 1, num_slots=10)
    with pytest.raises(ValueError, match="divisible"):
        GLMix(10, 3)
    with pytest.raises(ValueError, match="odd"):
        GLNetBlock(16, 1, 2.0, 0.0, None, norm_layer=torch.nn.LayerNorm, cpe_kernel=4)


def test_block_with_class_token_skips_the_convs():
    blk = GLNetBlock(16, 2, 2.0, 0.0, GlobalAttention(16, 2, num_prefix_tokens=1), norm_layer=torch.nn.LayerNorm,
                     cpe_kernel=3, mlp_dw=True, norm_eps=1e-6)
    x = torch.randn(2, 1 + 20, 16)
    out = blk(x, (4, 5))
    assert out.shape == x.shape
    assert_grads_reach_every_parameter(blk, out)
