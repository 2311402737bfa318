"""swin_t and pvt_v2 blueprints equal timm's models: parameter counts, and outputs after converting weights."""

from __future__ import annotations

import pytest
import timm
import torch

import spmkit
from spmkit.convert import detect_family, load_timm_weights, timm_state_dict_to_spmkit
from spmkit.errors import CheckpointError

CASES = [("swin_t", "swin_tiny_patch4_window7_224"), ("pvt_v2_b0", "pvt_v2_b0"), ("pvt_v2_b1", "pvt_v2_b1"),
         ("pvt_v2_b2", "pvt_v2_b2")]


@pytest.mark.parametrize("ours,theirs", CASES)
def test_parameter_count_equal(ours: str, theirs: str) -> None:
    a = sum(p.numel() for p in spmkit.create_model(ours, device="meta").parameters())
    b = sum(p.numel() for p in timm.create_model(theirs, device="meta").parameters())
    assert a == b


@pytest.mark.parametrize("ours,theirs", CASES[:2])
def test_converted_weights_give_equal_outputs(ours: str, theirs: str) -> None:
    ref = timm.create_model(theirs).eval()
    model = spmkit.create_model(ours).eval()
    report = load_timm_weights(model, ref.state_dict(), strict=True)
    assert not report.missing and not report.unexpected
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = (ref(x) - model(x)).abs().max().item()
        feats_ref = ref.forward_intermediates(x, intermediates_only=True)
        feats = model.forward_intermediates(x, intermediates_only=True)
    assert diff < 1e-5
    for a, b in zip(feats_ref, feats):
        assert (a - b).abs().max().item() < 1e-4


def test_pvt_v2_odd_input_matches_timm() -> None:
    ref = timm.create_model("pvt_v2_b0").eval()
    model = spmkit.create_model("pvt_v2_b0").eval()
    load_timm_weights(model, ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 200, 232)
    with torch.no_grad():
        assert (ref(x) - model(x)).abs().max().item() < 1e-5


def test_head_of_other_class_count_is_skipped_and_reported(tmp_path) -> None:
    ref = timm.create_model("pvt_v2_b0", num_classes=10)
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    model = spmkit.create_model("pvt_v2_b0", num_classes=1000)
    report = load_timm_weights(model, tmp_path / "timm.pth")
    assert sorted(report.skipped_shape) == ["head.fc.bias", "head.fc.weight"]
    torch.testing.assert_close(model.stem.proj.weight, ref.patch_embed.proj.weight)


def test_family_detection_and_errors() -> None:
    swin = timm.create_model("swin_tiny_patch4_window7_224", device="meta").state_dict()
    assert detect_family(swin) == "swin"
    assert "stages.0.blocks.0.attn.qkv.weight" in timm_state_dict_to_spmkit(swin)
    with pytest.raises(CheckpointError):
        detect_family({"foo.weight": torch.zeros(1)})
