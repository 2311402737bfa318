"""Stepwise Patch Merging: our fast module equals the straightforward (official-style) formulation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).parent))

from spm_reference import ReferenceAttention, ReferenceSPM  # noqa: E402

from spmkit.layers.gle import GuideAttention  # noqa: E402
from spmkit.layers.msa import MultiScaleAggregation  # noqa: E402
from spmkit.merging.spm import StepwisePatchMerging  # noqa: E402

OFFICIAL_KEYS = [  # the official module's state_dict, in order (Yonghao-Yu/StepwisePatchMerging, spm.py)
    "msa.local_conv_3.weight", "msa.local_conv_3.bias", "msa.local_conv_5.weight", "msa.local_conv_5.bias",
    "msa.local_conv_7.weight", "msa.local_conv_7.bias", "msa.local_conv_9.weight", "msa.local_conv_9.bias",
    "msa.proj.0.weight", "msa.proj.0.bias", "msa.proj.1.weight", "msa.proj.1.bias", "msa.proj.1.running_mean",
    "msa.proj.1.running_var", "msa.proj.1.num_batches_tracked", "msa.proj.3.weight", "msa.proj.3.bias",
    "gle.gtg.0.weight", "gle.gtg.0.bias", "gle.gtg.0.running_mean", "gle.gtg.0.running_var",
    "gle.gtg.0.num_batches_tracked", "gle.gtg.2.weight", "gle.gtg.2.bias", "gle.attn.qkv.weight",
    "gle.attn.qkv.bias", "gle.norm0.weight", "gle.norm0.bias", "gle.norm1.weight", "gle.norm1.bias",
]


def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial values for every parameter and BatchNorm buffer (defaults would hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if name.endswith("norm0.weight") else 0.0))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def _pair(in_dim, out_dim, **kw):
    ours = StepwisePatchMerging(in_dim, out_dim, **kw)
    _randomize(ours)
    ref = ReferenceSPM(in_dim, out_dim, **kw)
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ours, ref


CASES = [  # (in_dim, out_dim, input H, W, extra SPM parameters)
    (16, 32, 8, 8, {}),
    (16, 32, 7, 9, {}),  # odd: padded window tokens are masked
    (24, 40, 6, 5, {"kernel_sizes": (3, 5, 7), "gle_heads": 4, "guide_kernel": 5, "window": 3, "expand_ratio": 3}),
]
CASE_IDS = ["even", "odd", "custom-window3"]


@pytest.mark.parametrize(
    "in_dim,out_dim,h,w,kw,train,chunked",
    [pytest.param(*case, train, False, id=f"{name}-{'train' if train else 'eval'}")
     for case, name in zip(CASES, CASE_IDS) for train in (True, False)]
    + [pytest.param(*CASES[i], train, True, id=f"{CASE_IDS[i]}-{'train' if train else 'eval'}-row-chunks")
       for i, train in ((1, True), (1, False), (2, True))],  # one window row per chunk
)
def test_fast_spm_equals_reference_forward_and_gradients(in_dim, out_dim, h, w, kw, train, chunked):
    ours, ref = _pair(in_dim, out_dim, **kw)
    if chunked:  # one row of windows per chunk (CPU chunking, single-threaded only), padded rows included
        ours.gle.cpu_chunk_elements = 1
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _check_equal(ours, ref, in_dim, out_dim, h, w, train)
        finally:
            torch.set_num_threads(threads)
    else:
        _check_equal(ours, ref, in_dim, out_dim, h, w, train)


def _check_equal(ours, ref, in_dim, out_dim, h, w, train):
    ours.train(train)
    ref.train(train)
    x = torch.randn(3, h, w, in_dim, generator=torch.Generator().manual_seed(1))
    xo, xr = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    yo, yr = ours(xo), ref(xr)
    s = ours.stride
    assert yo.shape == (3, -(-h // s), -(-w // s), out_dim) == yr.shape
    assert (yo - yr).abs().max().item() < 1e-4
    grad_out = torch.randn(yo.shape, generator=torch.Generator().manual_seed(2))
    (yo * grad_out).sum().backward()
    (yr * grad_out).sum().backward()
    assert (xo.grad - xr.grad).abs().max().item() < 1e-4
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        assert (p.grad - ref_params[name].grad).abs().max().item() < 1e-4, name
    if train:  # BatchNorm running statistics follow the same batch statistics
        ref_buffers = dict(ref.named_buffers())
        for name, b in ours.named_buffers():
            assert torch.allclose(b.float(), ref_buffers[name].float(), atol=1e-5), name


def test_guide_attention_equals_row_zero_of_full_attention_with_mask():
    torch.manual_seed(0)
    fast, full = GuideAttention(32, 4), ReferenceAttention(32, 4)
    _randomize(fast)
    full.load_state_dict(fast.state_dict())
    u = torch.randn(6, 5, 32)
    valid = torch.ones(6, 5, dtype=torch.bool)
    valid[1, 3:] = False
    valid[4, 2] = False
    bias = torch.zeros(6, 5, 1).masked_fill(~valid[..., None], float("-inf"))
    assert (fast(u, bias) - full(u, valid)[:, 0]).abs().max().item() < 1e-5
    assert (fast(u) - full(u)[:, 0]).abs().max().item() < 1e-5


def test_official_state_dict_layout_round_trip():
    ours, ref = _pair(64, 128)
    assert list(ours.state_dict()) == OFFICIAL_KEYS
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    fresh = StepwisePatchMerging(64, 128)
    fresh.load_state_dict(ref.state_dict(), strict=True)  # an official-layout state_dict loads as it is
    fresh.eval()
    ref.eval()
    x = torch.randn(2, 6, 6, 64)
    assert (fresh(x) - ref(x)).abs().max().item() < 1e-4
    back = ReferenceSPM(64, 128)
    back.load_state_dict(fresh.state_dict(), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), ref.state_dict().values()))


@pytest.mark.parametrize(
    "in_dim,out_dim,expected",
    [(64, 128, 76_800), (128, 320, 415_488), (320, 512, 1_162_752)],
)
def test_parameter_counts_at_pvt_sizes(in_dim, out_dim, expected):
    m = StepwisePatchMerging(in_dim, out_dim, device="meta")
    assert sum(p.numel() for p in m.parameters()) == expected
    if in_dim == 64:
        assert sum(p.numel() for p in m.msa.parameters()) == 20_096
        assert sum(p.numel() for p in m.gle.parameters()) == 56_704


def test_msa_channel_interleave_order_on_a_hand_built_case():
    """Group i's depthwise conv multiplies by (i + 1); proj.0 and proj.3 copy channels through, so the
    output shows the interleaved tensor: channel 4*d + i must hold (i + 1) * input channel i*C/4 + d."""
    c = 8  # 4 groups of 2 channels
    msa = MultiScaleAggregation(c, c).eval()
    with torch.no_grad():
        for i, conv in enumerate(msa.local_convs()):
            conv.weight.zero_()
            conv.weight[:, 0, conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] = i + 1.0
            conv.bias.zero_()
        expand, bn, _, out = msa.proj  # expand: per group of 4 inputs, 8 outputs; keep the first 4
        expand.weight.zero_()
        expand.bias.zero_()
        for d in range(c // 4):
            for e in range(4):
                expand.weight[8 * d + e, e, 0, 0] = 1.0
        out.weight.zero_()
        out.bias.zero_()
        for d in range(c // 4):
            for e in range(4):
                out.weight[4 * d + e, 8 * d + e, 0, 0] = 1.0
    x = torch.randn(2, c, 5, 6)
    expected = torch.empty_like(x)
    for d in range(c // 4):
        for i in range(4):
            expected[:, 4 * d + i] = (i + 1) * x[:, i * (c // 4) + d]
    expected = F.gelu(expected / (1 + bn.eps) ** 0.5)
    assert (msa(x) - expected).abs().max().item() < 1e-5


def test_flop_count_reflects_the_folded_guide_attention():
    """1 query over L keys with folding: 3 N C^2 + 2 N h L C multiply-adds, not the 3 L N C^2 of full qkv."""
    n, length, c, h = 10, 5, 64, 8
    attn = GuideAttention(c, h)
    with FlopCounterMode(display=False) as counter:
        attn(torch.randn(n, length, c))
    assert counter.get_total_flops() == 2 * (3 * n * c * c + 2 * n * h * length * c)


@pytest.mark.parametrize(
    "kw,phrase",
    [
        ({"in_dim": 30, "out_dim": 64}, "divisible by 4"),
        ({"in_dim": 32, "out_dim": 60}, "divisible by gle_heads"),
        ({"in_dim": 32, "out_dim": 64, "kernel_sizes": (3, 4, 5, 7)}, "odd"),
        ({"in_dim": 32, "out_dim": 64, "kernel_sizes": (3, 3, 5, 7)}, "distinct"),
        ({"in_dim": 32, "out_dim": 64, "guide_kernel": 6}, "guide_kernel"),
    ],
)
def test_constraints_raise_a_sentence(kw, phrase):
    with pytest.raises(ValueError, match=phrase):
        StepwisePatchMerging(**kw, device="meta")
