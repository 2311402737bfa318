"""timm's model checks, parametrized over every blueprint (tiny ones run; full ones build on meta)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import spmkit
from spmkit import load_blueprint
from spmkit.builder import build_model
from spmkit.profile.flops import count_flops

from conftest import all_blueprint_files, tiny_blueprint_files

ALL = all_blueprint_files()
TINY = tiny_blueprint_files()


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_blueprint_builds_on_meta_and_matches_reference(path: Path) -> None:
    bp = load_blueprint(path)
    model = build_model(bp, device="meta")
    assert all(p.is_meta for p in model.parameters())
    params = sum(p.numel() for p in model.parameters())
    ref = bp.reference
    if ref.get("params") is not None:
        tol = ref.get("params_tolerance", 0.0)
        assert abs(params - ref["params"]) <= tol * ref["params"], f"{params} != {ref['params']}"
    if ref.get("paper_params_m") is not None:
        assert abs(params / 1e6 - ref["paper_params_m"]) <= 0.05 + 0.005 * ref["paper_params_m"]
    if ref.get("gmacs") is not None:
        macs = count_flops(model, (1, bp.in_chans, *bp.image_size)).macs / 1e9
        assert abs(macs - ref["gmacs"]) / ref["gmacs"] < 0.03, f"{macs:.3f} GMACs vs {ref['gmacs']}"


@pytest.mark.parametrize("path", TINY, ids=_ids(TINY))
class TestTinyModels:
    def _model(self, path: Path) -> torch.nn.Module:
        return spmkit.create_model(path)

    def test_forward_backward_every_parameter_gets_gradient(self, path: Path) -> None:
        model = self._model(path).train()
        x = torch.randn(2, 3, *model.img_size)
        out = model(x)
        assert out.shape == (2, model.num_classes) and torch.isfinite(out).all()
        out.square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, f"no gradient for {missing}"

    def test_intermediates_match_feature_info_and_forward_features(self, path: Path) -> None:
        model = self._model(path).eval()
        H, W = model.img_size
        x = torch.randn(1, 3, H, W)
        with torch.no_grad():
            final, feats = model.forward_intermediates(x)
            ff = model.forward_features(x)
            last_normed = model.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)[0]
        assert len(feats) == len(model.feature_info)
        for f, info in zip(feats, model.feature_info):
            assert f.shape == (1, info["num_chs"], -(-H // info["reduction"]), -(-W // info["reduction"]))
        torch.testing.assert_close(final, ff)
        if model.num_prefix_tokens == 0:
            torch.testing.assert_close(last_normed, ff.permute(0, 3, 1, 2))

    def test_odd_input_size_is_padded_not_crashed(self, path: Path) -> None:
        model = self._model(path).eval()
        with torch.no_grad():
            feats = model.forward_intermediates(torch.randn(1, 3, 61, 47), intermediates_only=True)
        assert feats[-1].shape[1] == model.feature_info[-1]["num_chs"]

    def test_grad_checkpointing_same_output(self, path: Path) -> None:
        model = self._model(path).eval()
        x = torch.randn(1, 3, *model.img_size, requires_grad=True)
        ref = model(x)
        model.set_grad_checkpointing(True)
        torch.testing.assert_close(model(x), ref)

    def test_reset_classifier_gives_pooled_features(self, path: Path) -> None:
        model = self._model(path).eval()
        x = torch.randn(2, 3, *model.img_size)
        with torch.no_grad():
            pre = model.forward_head(model.forward_features(x), pre_logits=True)
            model.reset_classifier(0)
            out = model(x)
        assert out.shape == (2, model.num_features)
        torch.testing.assert_close(out, pre)
        model.reset_classifier(7)
        assert model(x).shape == (2, 7)

    def test_timm_features_only(self, path: Path) -> None:
        import timm

        name = f"spmkit_{path.stem}"
        feat = timm.create_model(name, features_only=True, out_indices=(1, 3))
        outs = feat(torch.randn(1, 3, 64, 64))
        assert [o.shape[1] for o in outs] == feat.feature_info.channels()
        assert feat.feature_info.reduction() == [8, 32]

    def test_state_dict_round_trip(self, path: Path, tmp_path: Path) -> None:
        a, b = self._model(path).eval(), self._model(path).eval()
        torch.save(a.state_dict(), tmp_path / "w.pt")
        c = spmkit.create_model(path, checkpoint_path=str(tmp_path / "w.pt")).eval()
        x = torch.randn(1, 3, *a.img_size)
        with torch.no_grad():
            torch.testing.assert_close(c(x), a(x))
            assert not torch.allclose(b(x), a(x))  # different init, so the load did something


def test_meta_device_and_dtype() -> None:
    m = spmkit.create_model("tiny_pvt_v2", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in m.parameters())
    assert m(torch.randn(1, 3, 64, 64, dtype=torch.float64)).dtype == torch.float64


def test_no_weight_decay_names_exist() -> None:
    m = spmkit.create_model("tiny_pvt")
    names = dict(m.named_parameters())
    nwd = m.no_weight_decay()
    assert "stages.3.cls_token" in nwd and "stages.0.pos_embed.weight" in nwd
    assert nwd <= set(names)
    swin = spmkit.create_model("tiny_swin")
    assert "stages.0.blocks.0.attn.relative_position_bias_table" in swin.no_weight_decay()


def test_class_token_model_pools_the_token() -> None:
    m = spmkit.create_model("tiny_pvt").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = m.forward_features(x)
        assert tokens.shape == (2, 1 + 2 * 2, 64)
        torch.testing.assert_close(m.forward_head(tokens, pre_logits=True), tokens[:, 0])


def test_register_blueprint_file_with_timm(tmp_path: Path) -> None:
    import timm

    f = tmp_path / "mine.yaml"
    f.write_text("extends: tiny_swin\nname: mine\nstages.3.depth: 2\n")
    name = spmkit.register_blueprint(f)
    assert name == "spmkit_mine" and name in timm.list_models("spmkit_*")
    model = timm.create_model(name, num_classes=3)
    assert len(model.stages[3].blocks) == 2 and model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    feats = timm.create_model(name, features_only=True)(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [16, 32, 64, 64]
