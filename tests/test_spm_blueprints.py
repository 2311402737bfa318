"""SPM-family blueprints: FLOPs counted as computed, official layout inside a backbone, validation messages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import spmkit
from spmkit.errors import BlueprintError
from spmkit.profile.flops import count_flops

sys.path.insert(0, str(Path(__file__).parent))

from spm_reference import ReferenceSPM  # noqa: E402

PVT_LAYERS = [(1, 64, 128, 56), (2, 128, 320, 28), (3, 320, 512, 14)]  # (stage, in, out, input side) at 224


def _spm_macs(ci: int, co: int, side: int, heads: int = 8, official: bool = False) -> int:
    """Multiply-adds of one SPM layer: MSA (depthwise 3/5/7/9, grouped 1x1 expansion, 1x1 projection), then
    GLE (7x7 depthwise guide conv, then attention: folded 3 C^2 + 10 h C per window, or the official
    5-token qkv 15 C^2 + full 5x5 attention 50 C)."""
    ld = ci // 4
    msa = side * side * (ld * (9 + 25 + 49 + 81) + 2 * ci * 4 + 2 * ci * co)
    windows = (side // 2) ** 2
    attn = 15 * co * co + 50 * co if official else 3 * co * co + 2 * heads * 5 * co
    return msa + windows * (49 * co + attn)


def test_flop_count_of_pvt_tiny_spm_is_what_spmkit_computes():
    model = spmkit.create_model("pvt_tiny_spm", device="meta")
    report = count_flops(model)
    ours = official = 0
    for stage, ci, co, side in PVT_LAYERS:
        assert report.module_macs(f"stages.{stage}.downsample") == _spm_macs(ci, co, side)
        ours += _spm_macs(ci, co, side)
        official += _spm_macs(ci, co, side, official=True)
    # the official code's total (the blueprint's reference) = the rest of the model + its SPM layers
    official_total = (report.macs - ours + official) / 1e9
    assert abs(official_total - model.blueprint.reference["official_gmacs"]) < 0.01
    assert official > 2.4 * ours


def test_official_spm_state_dict_loads_into_backbone_merging_layers():
    model = spmkit.create_model("tiny_pvt_spm").eval()
    for stage in (1, 2, 3):
        layer = model.stages[stage].downsample
        ref = ReferenceSPM(layer.in_dim, layer.out_dim)
        for p in ref.parameters():
            torch.nn.init.normal_(p, 0, 0.2)
        layer.load_state_dict(ref.state_dict(), strict=True)
        ref.eval()
        x = torch.randn(1, 6, 6, layer.in_dim)
        with torch.no_grad():
            assert (layer(x) - ref(x)).abs().max().item() < 1e-4
    names = {n for n, _ in model.named_parameters()}
    assert {"stages.1.downsample.msa.proj.3.weight", "stages.3.downsample.gle.attn.qkv.weight"} <= names


def test_dtm_offsets_get_lr_scale_through_the_backbone():
    model = spmkit.create_model("pvt_tiny_dtm", device="meta")
    scales = model.param_lr_scales()
    expected = {f"stages.{i}.downsample.dconv.conv_offset.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
    assert set(scales) == expected and set(scales.values()) == {0.01}
    assert expected <= {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize(
    "overrides,phrase",
    [
        (["merging.type=spm", "stages.1.dim=36"], "merging (in stages.1): guided local enhancement"),
        (["merging.type=spm", "stages.0.dim=18"], "merging (in stages.1): multi-scale aggregation"),
        (["merging.type=gle_only", "merging.gle_heads=5"], "divisible by gle_heads"),
    ],
)
def test_constraint_violations_are_reported_at_the_blueprint_path(overrides, phrase):
    with pytest.raises(BlueprintError) as err:
        spmkit.create_model("tiny_pvt", overrides=overrides, device="meta")
    assert phrase in str(err.value)


def test_readme_example_swin_t_spm_builds():
    from spmkit.cli.app import app

    root = Path(__file__).resolve().parent.parent
    result = CliRunner().invoke(app, ["build", str(root / "blueprints" / "swin_t_spm.yaml")])
    assert result.exit_code == 0, result.output
    assert "29,949,538" in result.output and "spm" in result.output
