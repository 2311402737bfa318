"""spmkit visualize: every kind on every tiny blueprint that has it, capture never changes outputs, the
numbers behind the pictures are right, and a kind a model lacks is one clear sentence (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from conftest import tiny_blueprint_files
from spmkit.cli.app import app
from spmkit.visualize import KINDS, KindNotAvailableError, Options, kinds_for, visualize
from spmkit.visualize.attention import capture_site, guide_attention_probs, token_maps
from spmkit.visualize.capture import explicit_attention
from spmkit.visualize.erf import stage_erfs
from spmkit.visualize.kind import require_kind
from spmkit.visualize.sites import find_sites, select_site
from spmkit.visualize.inputs import builtin_image, from_blueprint, normalise

TINY = [p.stem for p in tiny_blueprint_files()]
runner = CliRunner()
CONV_ONLY = """
name: conv_only
img_size: 64
stem: {type: patch_embed, patch_size: 4}
mixer: null
merging: {type: patch_merging}
norm: {type: layernorm}
mlp_ratio: 2
stages: [{depth: 1, dim: 8}, {depth: 1, dim: 8}, {depth: 1, dim: 8}, {depth: 1, dim: 8}]
head: {type: classifier, num_classes: 10}
"""


def _check_fields(kind: str, data: dict, model) -> None:
    m = data["models"][0]
    if kind == "erf":
        assert len(m["stages"]) == len(model.feature_info)
        for s in m["stages"]:
            assert 0 < s["r50"] <= s["r90"]
            assert abs(sum(map(sum, s["map"])) - 1) < 1e-3
    elif kind == "features":
        for s in m["stages"]:
            ev = s["explained_variance"]
            assert len(ev) == 3 and all(0 <= v <= 1 for v in ev) and ev == sorted(ev, reverse=True)
            assert sum(ev) <= 1 + 1e-3
    elif kind == "attention":
        img = m["images"][0]
        total = np.sum(img["map"]) + sum(np.mean(v) for k, v in img.items() if k.endswith("_weight")
                                         and k not in ("guide_weight", "mean_guide_weight"))
        if "guide_map" in img:  # GLE: guide + its tokens sum to one per window
            assert abs(img["guide_weight"][0] + sum(img["token_weights"][0]) - 1) < 1e-3
        else:
            assert abs(total - 1) < 1e-3
        assert m["site"]["stage"] >= 1 and len(m["query"]["token"]) == 2
    elif kind == "slots":
        img = m["images"][0]
        assert abs(sum(img["share"]) - 1) < 1e-3 and abs(sum(img["hard_share"]) - 1) < 1e-3
        assert np.array(img["argmax"]).shape == tuple(m["grid"])
    elif kind == "offsets":
        assert m["layers"]
        for layer in m["layers"]:
            img = layer["images"][0]
            assert len(img["query_px"]) == 4
            assert img["query_px"] == layer["regular_px"]  # a fresh DTM's offsets are zero (LIT's init)
            assert len(img["points_px"]) == 4 * layer["grid_out"][0] * layer["grid_out"][1]


@pytest.mark.parametrize("kind", KINDS.names())
@pytest.mark.parametrize("bp", TINY)
def test_kind_on_tiny_blueprint(kind: str, bp: str, tmp_path: Path) -> None:
    model = from_blueprint(bp).model
    if kind not in kinds_for(model):
        with pytest.raises(KindNotAvailableError) as err:
            require_kind(kind, model, bp)
        msg = str(err.value)
        assert "\n" not in msg and msg.count(". ") == 0 and msg.endswith(".")
        assert all(k in msg for k in kinds_for(model)) and f"`{kind}`" in msg
        return
    k = require_kind(kind, model, bp)
    opts = Options(samples=1)
    x = normalise(builtin_image(64)[None], model)
    with torch.no_grad():
        before = model(x)
        with k.capture(model, opts) as rec:
            during = model(x)
        after = model(x)
    assert torch.equal(before, during) and torch.equal(before, after)  # capture changes nothing
    if k.targets:
        assert rec, "the capture recorded nothing"
    out = tmp_path / "v.png"
    res = visualize(kind, out, blueprint=bp, options=opts, json_output=tmp_path / "v.json", device="cpu")
    with Image.open(out) as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > 100
    assert json.loads((tmp_path / "v.json").read_text()) == json.loads(json.dumps(res.data))
    _check_fields(kind, res.data, model)


def test_erf_is_the_exact_receptive_field_of_a_conv_only_model(tmp_path: Path) -> None:
    path = tmp_path / "conv_only.yaml"
    path.write_text(CONV_ONLY)
    model = from_blueprint(str(path)).model
    for i, (a, grid_hw) in enumerate(stage_erfs(model, torch.randn(2, 3, 64, 64))):
        side = 4 * 2**i  # 4x4 patches, then 2x2 merging per stage
        ys, xs = (a > 0).nonzero()
        grid = 64 // side
        assert grid_hw == (grid, grid)
        lo = (grid // 2) * side
        assert (ys.min(), ys.max(), xs.min(), xs.max()) == (lo, lo + side - 1, lo, lo + side - 1)
        assert (a > 0).sum() == side * side
    res = visualize("erf", tmp_path / "e.png", blueprint=str(path), options=Options(samples=2), device="cpu")
    radii = [(s["r50"], s["r90"]) for s in res.data["models"][0]["stages"]]
    assert all(r50 <= r90 for r50, r90 in radii)
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(radii, radii[1:]))  # grows with stage


def test_sdpa_probabilities_reproduce_its_output() -> None:
    q, k, v = torch.randn(3, 2, 3, 5, 4).unbind(0)
    for mask in (None, torch.randn(1, 3, 5, 5), torch.rand(5, 5) > 0.3):
        if mask is not None and mask.dtype == torch.bool:
            mask[:, 0] = True
        p = explicit_attention(q, k, mask, scale=0.7)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.7)
        torch.testing.assert_close(p @ v, ref, atol=1e-5, rtol=1e-5)


def test_guide_probabilities_reproduce_gle_output() -> None:
    from spmkit.layers.gle import GuideAttention

    attn = GuideAttention(16, 4)
    torch.nn.init.normal_(attn.qkv.bias)
    u = torch.randn(6, 5, 16)
    bias = torch.zeros(6, 5, 1)
    bias[:2, 3:] = float("-inf")  # padded tokens of a border window
    p = guide_attention_probs(attn, u, bias)  # [N, heads, L]
    assert torch.all(p[:2, :, 3:] == 0)
    v = (u @ attn.qkv.weight[32:].T + attn.qkv.bias[32:]).view(6, 5, 4, 4)
    out = torch.einsum("nhl,nlhd->nhd", p, v).reshape(6, 16)
    torch.testing.assert_close(out, attn(u, bias), atol=1e-5, rtol=1e-5)


def test_window_attention_stays_in_the_query_window_and_sra_keys_are_reduced() -> None:
    model = from_blueprint("tiny_swin").model
    x = torch.randn(1, 3, 64, 64)
    site = select_site(find_sites(model, KINDS.get("attention").targets), 1, "1", "attention")
    with torch.no_grad(), capture_site(site) as rec:
        model(x)
    r = token_maps(site, rec, (0.3, 0.8))  # stage 1 is 16x16 tokens, windows of 4: token (4, 12)
    assert r["token"] == (4, 12)
    support = r["maps"][0, 0] > 0
    expect = torch.zeros(16, 16, dtype=torch.bool)
    expect[4:8, 12:16] = True
    assert torch.equal(support, expect)
    assert abs(float(r["maps"].sum()) - 1) < 1e-5
    pvt = from_blueprint("tiny_pvt").model
    site = select_site(find_sites(pvt, KINDS.get("attention").targets), 1, None, "attention")
    with torch.no_grad(), capture_site(site) as rec:
        pvt(x)
    assert tuple(token_maps(site, rec, (0.5, 0.5))["maps"].shape[-2:]) == (4, 4)  # 16x16 tokens, sr_ratio 4


def test_cli_erf_compare_json_and_missing_kind(tmp_path: Path) -> None:
    out = tmp_path / "erf.png"
    res = runner.invoke(app, ["visualize", "erf", "--blueprint", "tiny_pvt_spm", "--compare", "tiny_pvt",
                              "--device", "cpu", "-o", str(out), "--json", "--samples", "1", "--size", "32"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [m["label"] for m in data["models"]] == ["tiny_pvt_spm", "tiny_pvt"]
    assert all({"r50", "r90"} <= set(s) for m in data["models"] for s in m["stages"])
    assert out.is_file() and data["input"]["source"] == "random"
    res = runner.invoke(app, ["visualize", "slots", "--blueprint", "tiny_swin", "-o", str(tmp_path / "s.png")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "tiny_swin has no GLMix" in res.output and "attention, erf, features." in res.output
    assert not (tmp_path / "s.png").exists()
    res = runner.invoke(app, ["visualize", "attention", "--blueprint", "tiny_pvt_spm", "--stage", "2", "--block",
                              "7", "-o", str(tmp_path / "a.png")])
    assert res.exit_code == 2 and "stage 2 merging (merging spm / GuidedLocalEnhancement)" in res.output
    for bad, expect in ((["viz"], "unknown visualize kind 'viz'"), (["erf", "--query", "2", "0.5"], "--query")):
        res = runner.invoke(app, ["visualize", *bad, "--blueprint", "tiny_swin", "-o", str(tmp_path / "b.png")])
        assert res.exit_code == 2 and expect in res.output and "Traceback" not in res.output


def test_cli_draws_an_image_file(tmp_path: Path) -> None:
    img = tmp_path / "photo.png"
    Image.fromarray((builtin_image(80) * 255).astype(np.uint8)[:, :70]).save(img)
    out = tmp_path / "att.png"
    res = runner.invoke(app, ["visualize", "attention", str(img), "--blueprint", "tiny_pvt_spm", "--stage", "2",
                              "--block", "merging", "--query", "0.25", "0.75", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["input"] == {"source": "images", "size": 64, "count": 1, "images": ["photo.png"]}
    m = data["models"][0]
    assert m["site"]["block"] == "merging" and m["query"]["token"] == [4, 12] and out.is_file()
    assert m["images"][0]["query_window"] == [2, 6]


def test_checkpoint_weights_are_the_ones_drawn(tmp_path: Path) -> None:
    from spmkit.io.checkpoint import save_checkpoint
    from spmkit.visualize.inputs import from_checkpoint

    model = from_blueprint("tiny_lit").model
    with torch.no_grad():  # learned offsets, unlike a fresh DTM's zeros
        torch.nn.init.normal_(model.stages[1].downsample.dconv.conv_offset.weight, std=0.5)
    path = tmp_path / "best.pt"
    save_checkpoint({"task": "classification", "model_spec": {"blueprint": "tiny_lit", "overrides": []},
                     "blueprint": None, "recipe": {}, "data_info": {"num_classes": 10, "classes": list("abcdefghij")},
                     "model": model.state_dict(), "ema": None, "epoch": 1, "batch_in_epoch": 0, "step": 1}, path)
    loaded = from_checkpoint(path).model
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    res = runner.invoke(app, ["visualize", "offsets", "--checkpoint", str(path), "--stage", "2", "--json",
                              "-o", str(tmp_path / "o.png")])
    assert res.exit_code == 0, res.output
    layer = json.loads(res.stdout)["models"][0]["layers"][0]
    assert layer["stage"] == 2 and layer["images"][0]["mean_abs_offset"] > 0.01
    assert layer["images"][0]["query_px"] != layer["regular_px"]


def test_gle_maps_are_the_same_when_gle_processes_windows_in_chunks() -> None:
    from spmkit.visualize.attention import guide_maps

    model = from_blueprint("tiny_pvt_spm").model
    site = select_site(find_sites(model, KINDS.get("attention").targets), 2, "merging", "attention")
    x = torch.randn(2, 3, 64, 64)
    maps, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # GLE chunks only on one CPU thread
    try:
        for chunk in (0, 64):  # 0: one call; 64 elements: one window row per GuideAttention call
            site.module.cpu_chunk_elements = chunk
            with torch.no_grad(), capture_site(site) as rec:
                model(x)
            maps.append(guide_maps(site, rec, (0.5, 0.5)))
            assert len(rec["probs"]) == (1 if chunk == 0 else 2 * 8)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(maps[0]["maps"], maps[1]["maps"])
    torch.testing.assert_close(maps[0]["guide"], maps[1]["guide"])
    assert maps[0]["window"] == (4, 4) and maps[0]["maps"].shape == (2, 8, 16, 16)
