"""The reproduced backbones (docs/zoo.md): official parameter counts, MACs near the papers', layouts,
and the SPM combinations. Full models are built on the ``meta`` device (no memory, no weights)."""

from __future__ import annotations

import pytest
import torch

import spmkit
from spmkit import load_blueprint
from spmkit.builder import build_model
from spmkit.profile.flops import count_flops

# Counted from the official model definitions at 1000 classes (ziplab/LIT, AILab-CVC/GroupMixFormer,
# rayleizhu/GLMix), with the papers' GFLOPs (multiply-accumulates) at 224x224.
OFFICIAL = {
    "lit_ti": (19_886_272, 3.6),
    "lit_s": (27_973_720, 4.1),
    "groupmixformer_m": (5_733_120, 1.4),
    "groupmixformer_t": (10_949_152, 3.7),
    "glnet_stl": (30_296_786, 4.4),
    "glnet_4g": (27_001_593, 4.5),
}
SPM = {"lit_ti_spm": "lit_ti", "groupmixformer_t_spm": "groupmixformer_t", "glnet_stl_spm": "glnet_stl"}


def _meta(name: str):
    return build_model(load_blueprint(name), device="meta")


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_parameter_count_and_paper_macs(name: str) -> None:
    params, paper_gmacs = OFFICIAL[name]
    bp = load_blueprint(name)
    model = build_model(bp, device="meta")
    assert _params(model) == params  # exact: the layouts follow the official code
    assert bp.reference["params"] == params and bp.reference["paper_gflops"] == paper_gmacs
    gmacs = count_flops(model).macs / 1e9
    # FlopCounterMode counts matmuls and convs only; the papers' counters differ in what else they add
    assert abs(gmacs - paper_gmacs) / paper_gmacs < 0.06, f"{gmacs:.3f} GMACs vs paper {paper_gmacs}"


@pytest.mark.parametrize("name", sorted(SPM))
def test_spm_combination_only_swaps_the_merging(name: str) -> None:
    base, ours = _meta(SPM[name]), _meta(name)
    base_merging = sum(_params(s.downsample) for s in base.stages[1:])
    spm_merging = sum(_params(s.downsample) for s in ours.stages[1:])
    assert all(type(s.downsample).__name__ == "StepwisePatchMerging" for s in ours.stages[1:])
    assert _params(ours) == _params(base) - base_merging + spm_merging == load_blueprint(name).reference["params"]
    assert _params(ours.stem) == _params(base.stem)
    assert [_params(s.blocks) for s in ours.stages] == [_params(s.blocks) for s in base.stages]
    assert [f["reduction"] for f in ours.feature_info] == [4, 8, 16, 32]


def test_state_dict_layouts_follow_the_papers() -> None:
    sd = {k: tuple(v.shape) for k, v in _meta("lit_s").state_dict().items()}
    assert sd["stages.2.blocks.0.attn.relative_position_bias_table"] == (27 * 27, 12)
    assert sd["stages.3.blocks.0.attn.relative_position_bias_table"] == (13 * 13, 24)
    assert not any(k.startswith("stages.0.blocks.0.attn") for k in sd)  # MLP-only stage
    assert sd["stages.1.downsample.dconv.conv_offset.weight"] == (8, 96, 2, 2)

    sd = {k: tuple(v.shape) for k, v in _meta("lit_ti").state_dict().items()}
    assert sd["stages.3.pos_embed.weight"] == (1, 1 + 7 * 7, 512) and sd["stages.3.cls_token"] == (1, 1, 512)
    assert sd["stages.0.blocks.0.mlp.fc1.weight"] == (512, 64)  # mlp ratio 8

    sd = {k: tuple(v.shape) for k, v in _meta("groupmixformer_t").state_dict().items()}
    assert sd["stem.embed.proj.conv1.weight"] == (80, 1, 3, 3)
    assert sd["stages.2.blocks.0.attn.aggregator.agg0.conv.conv1.weight"] == (120, 1, 3, 3)
    assert sd["stages.2.blocks.0.attn.crpe.conv_list.2.weight"] == (60, 1, 7, 7)
    assert sd["stages.2.blocks.0.cpe.proj.weight"] == (200, 1, 3, 3)
    assert "norm.running_var" in sd  # BatchNorm final norm

    sd = {k: tuple(v.shape) for k, v in _meta("glnet_4g").state_dict().items()}
    assert sd["stages.2.blocks.0.mixer.relation_mha.in_proj_weight"] == (768, 256)
    assert sd["stages.2.blocks.1.mixer.qkv.weight"] == (768, 256)  # MHSA every other block of stage 3
    assert sd["stages.3.blocks.0.mlp.dw.weight"] == (1536, 1, 3, 3)
    assert sd["stem.proj1.weight"] == (32, 3, 3, 3)


@pytest.mark.parametrize("name", ["tiny_lit", "tiny_groupmixformer", "tiny_glnet"])
def test_tiny_variants_run_on_non_square_inputs(name: str) -> None:
    model = spmkit.create_model(name).eval()
    with torch.no_grad():
        feats = model.forward_intermediates(torch.randn(2, 3, 72, 40), intermediates_only=True)
    assert [tuple(f.shape[1:]) for f in feats] == [
        (info["num_chs"], -(-72 // info["reduction"]), -(-40 // info["reduction"])) for info in model.feature_info
    ]
    assert all(torch.isfinite(f).all() for f in feats)


@pytest.mark.parametrize("name", ["tiny_lit", "tiny_groupmixformer", "tiny_glnet"])
def test_meta_build_materialised_and_loaded_equals_a_normal_build(name: str) -> None:
    ref = spmkit.create_model(name).eval()
    model = spmkit.create_model(name, device="meta").to_empty(device="cpu")
    model.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref(x))
