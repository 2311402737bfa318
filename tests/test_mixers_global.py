import math

import pytest
import torch
import torch.nn.functional as F

from spmkit.layers.rel_pos import relative_position_index
from spmkit.mixers.global_attn import GlobalAttention
from _mixer_checks import MAP_SIZES, assert_grads_reach_every_parameter


def naive_attention(m: GlobalAttention, x: torch.Tensor, hw) -> torch.Tensor:
    """softmax(q k^T * scale + bias) v with every step written out, bias looked up pair by pair."""
    b, n, c = x.shape
    heads, d = m.num_heads, m.head_dim
    q, k, v = (x @ m.qkv.weight.t() + m.qkv.bias).split(c, dim=-1)
    q, k, v = (t.reshape(b, n, heads, d).transpose(1, 2) for t in (q, k, v))
    logits = q @ k.transpose(-1, -2) / math.sqrt(d)
    if m.relative_position_bias_table is not None:
        h, w = hw
        p = m.num_prefix_tokens
        table = m.relative_position_bias_table
        bias = torch.zeros(heads, n, n)
        for i in range(h * w):
            for j in range(h * w):
                dy, dx = i // w - j // w, i % w - j % w
                bias[:, p + i, p + j] = table[(dy + h - 1) * (2 * w - 1) + dx + w - 1]
        logits = logits + bias
    out = logits.softmax(-1) @ v
    return m.proj(out.transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize("hw", MAP_SIZES)
@pytest.mark.parametrize("prefix", [0, 1])
def test_shape_and_sdpa_equals_naive(hw, prefix):
    torch.manual_seed(0)
    m = GlobalAttention(24, 3, feat_size=hw, num_prefix_tokens=prefix, rel_pos_bias=True).eval()
    x = torch.randn(2, prefix + hw[0] * hw[1], 24)
    out = m(x, hw)
    assert out.shape == x.shape
    torch.testing.assert_close(out, naive_attention(m, x, hw), atol=1e-5, rtol=1e-4)


def test_without_bias_equals_naive_and_has_no_table():
    m = GlobalAttention(16, 2).eval()
    assert m.relative_position_bias_table is None and m.no_weight_decay() == set()
    x = torch.randn(1, 1 + 35, 16)
    m.num_prefix_tokens = 1
    torch.testing.assert_close(m(x, (5, 7)), naive_attention(m, x, (5, 7)), atol=1e-5, rtol=1e-4)


def test_bias_table_size_is_lit_s():
    # LIT-S stage 3 at 224: 14x14 map, 12 heads -> (2*14-1)^2 x 12 table
    m = GlobalAttention(384, 12, feat_size=(14, 14), rel_pos_bias=True, device="meta")
    assert tuple(m.relative_position_bias_table.shape) == (27 * 27, 12)
    assert m.no_weight_decay() == {"relative_position_bias_table"}


def test_relative_index_one_pair():
    idx = relative_position_index(3, 4)
    # token (0, 0) attending to (2, 3): offsets (-2, -3) -> row 0, column 0 of the 5x7 table
    assert idx[0, 2 * 4 + 3] == 0
    # and the reverse pair: offsets (+2, +3) -> last entry
    assert idx[2 * 4 + 3, 0] == 5 * 7 - 1
    assert idx.diagonal().unique().tolist() == [2 * 7 + 3]


def test_bias_resized_for_other_map_sizes():
    torch.manual_seed(0)
    m = GlobalAttention(16, 2, feat_size=(4, 4), rel_pos_bias=True).eval()
    x = torch.randn(1, 6 * 5, 16)
    out = m(x, (6, 5))
    assert out.shape == x.shape
    assert m.attn_bias((6, 5)).shape == (2, 30, 30)
    # same size: the table is used as is
    torch.testing.assert_close(m.attn_bias((4, 4))[:, 0, 0], m.relative_position_bias_table[3 * 7 + 3])


def test_grads_reach_every_parameter():
    m = GlobalAttention(16, 2, feat_size=(5, 6), num_prefix_tokens=1, rel_pos_bias=True)
    x = torch.randn(2, 31, 16)
    assert_grads_reach_every_parameter(m, m(x, (5, 6)))


def test_bad_config_errors():
    with pytest.raises(ValueError, match="divisible"):
        GlobalAttention(10, 3)
    with pytest.raises(ValueError, match="feat_size"):
        GlobalAttention(16, 2, rel_pos_bias=True)
    with pytest.raises(ValueError, match="tokens"):
        GlobalAttention(16, 2)(torch.randn(1, 10, 16), (3, 3))


def test_uses_sdpa(monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    GlobalAttention(16, 2)(torch.randn(1, 9, 16), (3, 3))
    assert calls


def test_mlp_only_block_is_x_plus_mlp_and_refuses_a_mixer():
    from spmkit.blocks.mlp_only import MlpOnlyBlock

    blk = MlpOnlyBlock(16, 2.0, 0.0, None, torch.nn.LayerNorm, torch.nn.GELU)
    x = torch.randn(2, 1 + 12, 16)
    torch.testing.assert_close(blk(x, (3, 4)), x + blk.mlp(blk.norm2(x)))
    assert blk.attn is None and not any(n.startswith("norm1") for n, _ in blk.named_parameters())
    with pytest.raises(ValueError, match="mixer: null"):
        MlpOnlyBlock(16, 2.0, 0.0, GlobalAttention(16, 2), torch.nn.LayerNorm, torch.nn.GELU)
