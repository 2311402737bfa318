"""The patch-merging family: shapes for even and odd inputs, compositions of the ablations, LIT's DTM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spmkit.merging  # noqa: F401  (registers every merging type)
from spmkit.layers.gle import GuidedLocalEnhancement
from spmkit.layers.msa import MultiScaleAggregation
from spmkit.merging.dtm import DeformableTokenMerging
from spmkit.merging.gle_only import GLEOnlyMerging
from spmkit.merging.msa_only import MSAOnlyMerging
from spmkit.registry import MERGING

MINE = ["spm", "msa_only", "gle_only", "dtm"]
ALL = [*MINE, "conv", "patch_merging", "conv_3x3"]


def _build(name: str, in_dim: int, out_dim: int, **kw):
    if name in ("conv", "patch_merging"):
        kw.setdefault("norm_layer", nn.LayerNorm)
    if name == "conv_3x3":  # PVT v2's overlapping merging
        return MERGING.get("conv")(in_dim=in_dim, out_dim=out_dim, norm_layer=nn.LayerNorm, kernel_size=3,
                                   stride=2, padding=1, **kw)
    return MERGING.get(name)(in_dim=in_dim, out_dim=out_dim, **kw)


@pytest.mark.parametrize("hw", [(8, 8), (7, 9), (1, 1)], ids=["even", "odd", "1x1"])
@pytest.mark.parametrize("name", ALL)
def test_shapes_even_and_odd_and_gradients(name, hw):
    torch.manual_seed(0)
    m = _build(name, 16, 32).train()
    x = torch.randn(2, *hw, 16, requires_grad=True)
    y = m(x)
    assert m.stride == 2
    assert y.shape == (2, -(-hw[0] // 2), -(-hw[1] // 2), 32)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("name", ALL)
def test_meta_device_build(name):
    m = _build(name, 64, 128, device="meta")
    assert all(p.is_meta for p in m.parameters())
    y = m(torch.empty(1, 14, 14, 64, device="meta"))
    assert y.shape == (1, 7, 7, 128)


def test_msa_only_is_msa_then_2x2_conv_and_norm():
    torch.manual_seed(0)
    m = MSAOnlyMerging(16, 32).eval()
    x = torch.randn(2, 7, 6, 16)
    y = m.msa(x.permute(0, 3, 1, 2))
    y = F.conv2d(F.pad(y, (0, 0, 0, 1)), m.proj.weight, m.proj.bias, stride=2).permute(0, 2, 3, 1)
    expected = F.layer_norm(y, (32,), m.norm.weight, m.norm.bias, m.norm.eps)
    assert (m(x) - expected).abs().max().item() < 1e-5
    assert sum(p.numel() for p in m.parameters()) == (
        sum(p.numel() for p in MultiScaleAggregation(16, 32).parameters()) + 32 * 32 * 4 + 32 + 2 * 32
    )


def test_gle_only_is_1x1_projection_then_gle():
    torch.manual_seed(0)
    m = GLEOnlyMerging(16, 32).eval()
    x = torch.randn(2, 6, 6, 16)
    expected = m.gle(F.conv2d(x.permute(0, 3, 1, 2), m.proj.weight, m.proj.bias))
    assert (m(x) - expected).abs().max().item() < 1e-5
    gle = GuidedLocalEnhancement(32)
    assert sum(p.numel() for p in m.parameters()) == 16 * 32 + 32 + sum(p.numel() for p in gle.parameters())


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_dtm_with_zero_offsets_is_the_plain_2x2_stride2_conv(train):
    torch.manual_seed(0)
    m = DeformableTokenMerging(16, 32).train(train)
    assert not m.dconv.conv_offset.weight.any() and not m.dconv.conv_offset.bias.any()
    x = torch.randn(2, 8, 6, 16)
    conv = F.conv2d(x.permute(0, 3, 1, 2), m.dconv.weight, m.dconv.bias, stride=2)
    bn = m.norm_layer
    if train:
        mean, var = conv.mean((0, 2, 3), keepdim=True), conv.var((0, 2, 3), unbiased=False, keepdim=True)
    else:
        mean, var = bn.running_mean.view(1, -1, 1, 1), bn.running_var.view(1, -1, 1, 1)
    normed = (conv - mean) / (var + bn.eps).sqrt() * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    expected = F.gelu(normed).permute(0, 2, 3, 1)
    assert (m(x) - expected).abs().max().item() < 1e-4


def test_dtm_offsets_move_the_sampling_and_learn_slower():
    torch.manual_seed(0)
    m = DeformableTokenMerging(16, 32).eval()
    x = torch.randn(1, 8, 8, 16)
    before = m(x)
    with torch.no_grad():
        m.dconv.conv_offset.bias.fill_(0.5)  # shift every sample by half a pixel
    assert (m(x) - before).abs().max().item() > 1e-3
    names = dict(m.named_parameters())
    scales = m.param_lr_scales()
    assert scales == {"dconv.conv_offset.weight": 0.01, "dconv.conv_offset.bias": 0.01}
    assert set(scales) <= set(names)
    assert list(names) == [  # LIT's names (DeformablePatchMerging / DeformConv2dPack)
        "dconv.weight", "dconv.bias", "dconv.conv_offset.weight", "dconv.conv_offset.bias",
        "norm_layer.weight", "norm_layer.bias",
    ]


@pytest.mark.parametrize("hw", [(8, 6), (7, 5)], ids=["even", "odd"])
def test_patch_merging_equals_timm_swin(hw):
    from timm.models.swin_transformer import PatchMerging as TimmPatchMerging

    ours = _build("patch_merging", 16, 32)
    theirs = TimmPatchMerging(16, 32)
    theirs.load_state_dict(ours.state_dict(), strict=True)  # same names: norm, reduction
    x = torch.randn(2, *hw, 16)
    assert (ours(x) - theirs(x)).abs().max().item() < 1e-5


def test_conv_merging_is_the_strided_conv_then_norm():
    m = _build("conv_3x3", 16, 32).eval()
    x = torch.randn(2, 8, 8, 16)
    y = F.conv2d(x.permute(0, 3, 1, 2), m.proj.weight, m.proj.bias, stride=2, padding=1).permute(0, 2, 3, 1)
    assert (m(x) - F.layer_norm(y, (32,), m.norm.weight, m.norm.bias, m.norm.eps)).abs().max().item() < 1e-5
