"""Semantic FPN and UperNet heads, the Segmentor wrapper and whole / sliding-window inference."""

from __future__ import annotations

import pytest
import timm
import torch

from spmkit.tasks.segmentation.inference import infer_logits
from spmkit.tasks.segmentation.model import Segmentor
from spmkit.tasks.segmentation.semantic_fpn import SemanticFPNHead
from spmkit.tasks.segmentation.upernet import UperNetHead



def _backbone():
    return timm.create_model("test_resnet", pretrained=False)


@pytest.mark.parametrize("head_cls", [SemanticFPNHead, UperNetHead])
def test_heads_output_at_the_finest_stride(head_cls):
    feats = [torch.randn(2, c, 32 // s, 48 // s) for c, s in zip((8, 16, 24, 32), (1, 2, 4, 8))]
    kw = dict(fpn_channels=16, channels=16) if head_cls is SemanticFPNHead else dict(channels=16)
    head = head_cls([8, 16, 24, 32], 5, **kw)
    out = head(feats)
    assert out.shape == (2, 5, 32, 48)
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_semantic_fpn_layout():
    head = SemanticFPNHead([8, 16, 24, 32], 5, fpn_channels=16, channels=12)
    # conv units per level: max(1, log2(stride / 4)) -> 1, 1, 2, 3
    convs = [sum(isinstance(m, torch.nn.Conv2d) for m in h.modules()) for h in head.scale_heads]
    ups = [sum(isinstance(m, torch.nn.Upsample) for m in h.modules()) for h in head.scale_heads]
    assert convs == [1, 1, 2, 3] and ups == [0, 1, 2, 3]


@pytest.mark.parametrize("head", ["semantic_fpn", "upernet"])
@pytest.mark.parametrize("size", [(64, 64), (70, 90), (33, 47)])
def test_segmentor_any_size(head, size):
    model = Segmentor(_backbone(), 4, head=head, channels=16, **({"fpn_channels": 16} if head == "semantic_fpn" else {}))
    out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 4, *size)


def test_slide_inference_matches_whole_when_one_window_covers_the_image():
    torch.manual_seed(0)
    model = Segmentor(_backbone(), 3, channels=8, fpn_channels=8).eval()
    x = torch.rand(1, 3, 64, 80)
    whole = infer_logits(model, x, mode="whole")
    one = infer_logits(model, x, mode="slide", crop_size=(64, 96), stride=(64, 64))
    assert torch.allclose(whole, one, atol=1e-5)
    slid = infer_logits(model, x, mode="slide", crop_size=(64, 64), stride=(32, 32), out_size=(32, 40))
    assert slid.shape == (1, 3, 32, 40)


def test_slide_windows_cover_every_pixel_and_average():
    calls = []

    class Constant(torch.nn.Module):
        def forward(self, x):
            calls.append(tuple(x.shape[-2:]))
            return torch.ones(x.shape[0], 2, *x.shape[-2:])

    out = infer_logits(Constant(), torch.zeros(1, 3, 100, 70), mode="slide", crop_size=(64, 64), stride=(40, 40))
    assert torch.allclose(out, torch.ones_like(out))  # overlaps averaged, nothing left uncovered
    assert calls == [(64, 64)] * 4  # rows: 0, 36; cols: 0, 6


def test_optimizer_hints_are_prefixed():
    model = Segmentor(_backbone(), 3, channels=8, fpn_channels=8)
    assert model.no_weight_decay() == set()
    names = {n for n, _ in model.named_parameters()}
    assert "backbone.body.conv1.0.weight" in names


def _merging_types() -> list[str]:
    from spmkit.registry import MERGING, load_components

    load_components()
    return MERGING.names()


@pytest.mark.parametrize("merging", _merging_types())
def test_every_merging_type_works_at_odd_image_sizes(merging):
    import spmkit

    backbone = spmkit.create_model("tiny_pvt", overrides=[f"merging={{type: {merging}}}"])
    model = Segmentor(backbone, 3, channels=8, fpn_channels=8)
    out = model(torch.rand(1, 3, 70, 90))  # padded to 96 x 96 inside, cropped back
    assert out.shape == (1, 3, 70, 90) and torch.isfinite(out).all()
