import pytest
import torch

from spmkit.blocks.group_mix import GroupMixBlock
from spmkit.mixers.group_mix import GroupMixAttention
from _mixer_checks import MAP_SIZES, assert_grads_reach_every_parameter


def naive_group_mix(m: GroupMixAttention, x: torch.Tensor, hw) -> torch.Tensor:
    """The unfactorised form: A = Q softmax_tokens(K)^T (N x N), then A V, plus q * dwconv(v) per head group."""
    b, n, c = x.shape
    q, k, v, local = m.qkv_proxies(x, hw)
    out = torch.zeros_like(q)
    for head in range(m.num_heads):
        ks = torch.exp(k[:, head]) / torch.exp(k[:, head]).sum(dim=1, keepdim=True)  # softmax over tokens
        attn = q[:, head] @ ks.transpose(1, 2)  # [B, N, N]
        out[:, head] = m.scale * (attn @ v[:, head])
    # conv relative position encoding, head by head, with the conv of the head's group
    bounds = []
    for conv in m.crpe.conv_list:
        heads_here = conv.in_channels // m.head_dim
        bounds += [(conv, i) for i in range(heads_here)]
    for head, (conv, i) in enumerate(bounds):
        ch = slice(i * m.head_dim, (i + 1) * m.head_dim)
        v_img = v[:, head].transpose(1, 2).reshape(b, m.head_dim, *hw)
        conv_v = torch.nn.functional.conv2d(
            v_img, conv.weight[ch], conv.bias[ch], padding=conv.padding, groups=m.head_dim
        )
        out[:, head] = out[:, head] + q[:, head] * conv_v.flatten(2).transpose(1, 2)
    out = out.transpose(1, 2).reshape(b, n, -1)
    return m.proj(torch.cat([out, local], -1))


@pytest.mark.parametrize("hw", MAP_SIZES)
def test_shape_and_factorised_equals_naive(hw):
    torch.manual_seed(0)
    m = GroupMixAttention(40, 8)
    m.train()
    x = torch.randn(2, hw[0] * hw[1], 40)
    m(x, hw)  # move BN statistics away from their init
    m.eval()
    out = m(x, hw)
    assert out.shape == x.shape
    torch.testing.assert_close(out, naive_group_mix(m, x, hw), atol=1e-5, rtol=1e-4)


def test_segments_and_heads():
    m = GroupMixAttention(200, 8, device="meta")  # GroupMixFormer-T stage 3
    assert m.head_dim == 20 and m.aggregator.seg_dim == 40
    assert [c.kernel_size for c in m.crpe.conv_list] == [(3, 3), (5, 5), (7, 7)]
    assert [c.in_channels for c in m.crpe.conv_list] == [40, 60, 60]
    assert m.scale == pytest.approx(25**-0.5)  # released scale uses dim // heads
    assert tuple(m.aggregator.agg0.conv.conv1.weight.shape) == (120, 1, 3, 3)  # q, k, v slices of segment 4


def test_non_attention_branch_sees_q_k_v_of_segment_4():
    torch.manual_seed(0)
    m = GroupMixAttention(40, 8).eval()
    x = torch.randn(1, 16, 40)
    _, _, _, local = m.qkv_proxies(x, (4, 4))
    qkv = m.qkv(x)  # [1, 16, 3*40]: q | k | v, segment 4 is channels 32..39 of each
    seg4 = torch.cat([qkv[..., 32:40], qkv[..., 72:80], qkv[..., 112:120]], -1)
    img = seg4.transpose(1, 2).reshape(1, 24, 4, 4)
    ref = m.aggregator.act(m.aggregator.agg0.norm(m.aggregator.agg0.conv(img).flatten(2).transpose(1, 2)))
    torch.testing.assert_close(local, ref)


def test_grads_reach_every_parameter():
    m = GroupMixAttention(40, 8)
    x = torch.randn(2, 5 * 7, 40)
    assert_grads_reach_every_parameter(m, m(x, (5, 7)))


@pytest.mark.parametrize("hw", [(6, 6), (5, 9)])
def test_block_shape_and_grads(hw):
    blk = GroupMixBlock(40, 4.0, 0.1, GroupMixAttention(40, 8), torch.nn.LayerNorm, torch.nn.GELU, norm_eps=1e-6)
    x = torch.randn(2, hw[0] * hw[1], 40)
    out = blk(x, hw)
    assert out.shape == x.shape
    assert_grads_reach_every_parameter(blk, out)


def test_block_norm_eps_gives_layernorm():
    from spmkit.layers.norm import BatchNormTokens

    blk = GroupMixBlock(40, 4.0, 0.0, GroupMixAttention(40, 8), BatchNormTokens, torch.nn.GELU, norm_eps=1e-6)
    assert type(blk.norm1) is torch.nn.LayerNorm and blk.norm2.eps == 1e-6
    assert isinstance(GroupMixBlock(40, 4.0, 0.0, None, BatchNormTokens, torch.nn.GELU).norm2, BatchNormTokens)


def test_block_cpe_skips_class_token():
    blk = GroupMixBlock(8, 2.0, 0.0, None, torch.nn.LayerNorm, torch.nn.GELU)
    x = torch.randn(1, 1 + 12, 8)
    torch.testing.assert_close(blk.cpe(x, (3, 4))[:, 0], x[:, 0])


def test_block_cpe_is_residual_dwconv():
    blk = GroupMixBlock(8, 2.0, 0.0, None, torch.nn.LayerNorm, torch.nn.GELU).eval()
    torch.nn.init.zeros_(blk.mlp.fc2.weight), torch.nn.init.zeros_(blk.mlp.fc2.bias)
    x = torch.randn(1, 12, 8)
    ref = x + torch.nn.functional.conv2d(
        x.transpose(1, 2).reshape(1, 8, 3, 4), blk.cpe.proj.weight, blk.cpe.proj.bias, padding=1, groups=8
    ).flatten(2).transpose(1, 2)
    torch.testing.assert_close(blk(x, (3, 4)), ref)


def test_bad_config_errors():
    with pytest.raises(ValueError, match="divisible by 5"):
        GroupMixAttention(64, 8)
    with pytest.raises(ValueError, match="sum to heads"):
        GroupMixAttention(40, 4)
    with pytest.raises(ValueError, match="odd"):
        GroupMixBlock(40, 4.0, 0.0, None, torch.nn.LayerNorm, torch.nn.GELU, cpe_kernel=2)
