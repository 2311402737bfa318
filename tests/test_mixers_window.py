"""Swin window attention (the lead's ``window`` mixer) against a reference written window by window."""

import math

import pytest
import torch
import torch.nn.functional as F

from spmkit.mixers.window import WindowAttention, shifted_window_mask
from _mixer_checks import assert_grads_reach_every_parameter


def _region(i: int, size: int, win: int, shift: int) -> int:
    """Swin's region label of (padded, rolled) row/column ``i``: 0 body, 1 last window, 2 wrapped strip."""
    if shift == 0:
        return 0
    return 0 if i < size - win else (1 if i < size - shift else 2)


def naive_window_attention(m: WindowAttention, x: torch.Tensor, hw) -> torch.Tensor:
    """Pad, roll, then for every window: every logit, bias and mask entry computed pair by pair."""
    b, n, c = x.shape
    (wh, ww), (sh, sw) = m.window_size, m.shift_size
    heads, d = m.num_heads, c // m.num_heads
    h, w = hw
    hp, wp = math.ceil(h / wh) * wh, math.ceil(w / ww) * ww
    img = F.pad(x.reshape(b, h, w, c), (0, 0, 0, wp - w, 0, hp - h))
    img = torch.roll(img, (-sh, -sw), (1, 2))
    out = torch.zeros_like(img)
    table = m.relative_position_bias_table
    for r0 in range(0, hp, wh):
        for c0 in range(0, wp, ww):
            pos = [(r0 + i, c0 + j) for i in range(wh) for j in range(ww)]
            tok = torch.stack([img[:, r, cc] for r, cc in pos], 1)  # [B, n, C]
            q, k, v = (tok @ m.qkv.weight.t() + m.qkv.bias).split(c, -1)
            q, k, v = (t.reshape(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
            logits = q @ k.transpose(-1, -2) / math.sqrt(d)
            for a, (ra, ca) in enumerate(pos):
                for z, (rz, cz) in enumerate(pos):
                    dy, dx = ra - rz, ca - cz
                    logits[:, :, a, z] += table[(dy + wh - 1) * (2 * ww - 1) + dx + ww - 1]
                    same = _region(ra, hp, wh, sh) == _region(rz, hp, wh, sh) and _region(
                        ca, wp, ww, sw
                    ) == _region(cz, wp, ww, sw)
                    if not same:
                        logits[:, :, a, z] -= 100.0
            o = m.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, c))
            for a, (r, cc) in enumerate(pos):
                out[:, r, cc] = o[:, a]
    out = torch.roll(out, (sh, sw), (1, 2))[:, :h, :w]
    return out.reshape(b, n, c)


CASES = [
    # feat_size at build, runtime hw, window, shift
    ((8, 8), (8, 8), 4, False),
    ((8, 8), (8, 8), 4, True),
    ((8, 12), (8, 12), 4, True),  # non-square
    ((8, 8), (10, 7), 4, True),  # runtime size the window does not divide: padded
    ((7, 9), (7, 9), 4, True),  # build size the window does not divide (allow_padding)
]


@pytest.mark.parametrize("feat,hw,win,shift", CASES)
def test_shape_and_sdpa_equals_naive(feat, hw, win, shift):
    torch.manual_seed(0)
    m = WindowAttention(16, 2, feat, window_size=win, shift=shift, allow_padding=True).eval()
    x = torch.randn(2, hw[0] * hw[1], 16)
    out = m(x, hw)
    assert out.shape == x.shape
    torch.testing.assert_close(out, naive_window_attention(m, x, hw), atol=1e-5, rtol=1e-4)


def test_mask_blocks_one_pair_explicitly():
    # 8x8 map, window 4, shift 2: after the cyclic shift the bottom-right window holds original rows/cols
    # 6, 7, 0, 1. Original (7, 7) and (0, 0) share that window but came from opposite corners.
    mask = shifted_window_mask(8, 8, (4, 4), (2, 2))
    last = mask[3]  # windows are row-major: index 3 is the bottom-right one
    # inside the rolled window, (7, 7) sits at local (1, 1) -> 5 and (0, 0) at local (2, 2) -> 10
    assert last[5, 10] == -100.0 and last[10, 5] == -100.0
    assert last[5, 0] == 0.0  # (7, 7) and (6, 6) are in the same region
    # and the mixer honours it: the output at (7, 7) does not depend on the input at (0, 0) (the -100
    # logit offset, as in Swin, leaves a weight of e^-100: gradients of ~1e-44 instead of ~1e-2)
    m = WindowAttention(8, 1, (8, 8), window_size=4, shift=True)
    x = torch.randn(1, 64, 8, requires_grad=True)
    m(x, (8, 8))[0, 7 * 8 + 7].sum().backward()
    assert x.grad[0, 0].abs().max() < 1e-30
    assert x.grad[0, 6 * 8 + 6].abs().max() > 1e-4
    # without the shift, (0, 0) is in another window altogether
    m.shift_size = (0, 0)
    x.grad = None
    m(x, (8, 8))[0, 7 * 8 + 7].sum().backward()
    assert torch.all(x.grad[0, 0] == 0)


def test_shift_only_where_the_map_exceeds_the_window():
    assert WindowAttention(8, 1, (7, 7), window_size=7, shift=True).shift_size == (0, 0)
    assert WindowAttention(8, 1, (14, 14), window_size=7, shift=True).shift_size == (3, 3)


def test_grads_reach_every_parameter():
    m = WindowAttention(16, 2, (8, 8), window_size=4, shift=True)
    x = torch.randn(2, 9 * 6, 16)
    assert_grads_reach_every_parameter(m, m(x, (9, 6)))


def test_window_that_does_not_divide_is_a_clear_error():
    with pytest.raises(ValueError, match="allow_padding"):
        WindowAttention(8, 1, (10, 10), window_size=4)


def test_meta_build_then_materialise_gives_the_same_output():
    # a non-persistent index buffer made at construction would be uninitialised memory after to_empty()
    torch.manual_seed(0)
    ref = WindowAttention(8, 1, (8, 8), window_size=4, shift=True)
    m = WindowAttention(8, 1, (8, 8), window_size=4, shift=True, device="meta").to_empty(device="cpu")
    m.load_state_dict(ref.state_dict())
    x = torch.randn(1, 64, 8)
    torch.testing.assert_close(m(x, (8, 8)), ref(x, (8, 8)))


def test_inference_mode_first_then_training_step():
    m = WindowAttention(8, 1, (8, 8), window_size=4, shift=True)
    x = torch.randn(1, 64, 8)
    with torch.inference_mode():
        m(x, (8, 8))
    m(x.requires_grad_(), (8, 8)).sum().backward()
    assert m.relative_position_bias_table.grad is not None
