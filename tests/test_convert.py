"""Official checkpoints into spmkit: every release's key layout (tests/data/official_layouts, recorded from
the official model code) converts strictly into its blueprint; values survive; wrong files fail with the
keys; wrappers and timm train.py checkpoints read; the CLI and create_model load official files."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import spmkit
from spmkit.blueprint.zoo import releases
from spmkit.cli.app import app
from spmkit.convert import convert_state_dict, detect_layout, load_weights, read_checkpoint
from spmkit.convert.load import fit_report
from spmkit.errors import CheckpointError
from spmkit.layers.rel_pos import relative_position_index
from spmkit.mixers.window import shifted_window_mask
from spmkit.registry import CONVERTERS

LAYOUTS = Path(__file__).parent / "data" / "official_layouts"

# blueprint -> (converter, blueprint), from the blueprints' release data; each reproduction blueprint has a
# recorded layout of its release's state_dict in LAYOUTS/<blueprint>.json.gz
OFFICIAL = {name: (release.layout, name) for name, release in releases().items()}


def _dims(dims, heads, depths=(1, 1, 1, 1)) -> list[str]:
    out = []
    for i, (c, h, d) in enumerate(zip(dims, heads, depths)):
        out += [f"stages.{i}.dim={c}", f"stages.{i}.heads={h}", f"stages.{i}.depth={d}"]
    return out


# small variants of the blueprints with the official block structure (image-size dependent buffers kept)
TINY = {
    "swin_t": _dims((16, 32, 48, 64), (1, 1, 2, 2), (2, 2, 2, 2)),
    "pvt_tiny": ["img_size=64", *_dims((16, 32, 48, 64), (1, 1, 2, 2))],
    "pvt_v2_b0": ["img_size=64"],
    "pvt_tiny_spm": ["img_size=64", *_dims((16, 32, 48, 64), (1, 1, 2, 2))],
    "lit_ti": ["img_size=64", *_dims((16, 32, 48, 64), (1, 1, 2, 2))],
    "lit_s": _dims((16, 32, 48, 64), (1, 1, 2, 2)),
    "groupmixformer_b": ["img_size=64", *_dims((40, 40, 80, 80), (8, 8, 8, 8))],
    "glnet_stl": ["img_size=128", *_dims((32, 64, 96, 128), (1, 2, 3, 4))],
    "glnet_stl_paramslot": ["img_size=128", *_dims((32, 64, 96, 128), (1, 2, 3, 4))],
    "glnet_16g": ["img_size=128", *_dims((32, 64, 96, 128), (1, 2, 3, 4), (1, 1, 2, 1))],
}


@lru_cache(maxsize=None)
def layout(name: str) -> dict:
    with gzip.open(LAYOUTS / f"{name}.json.gz", "rt") as f:
        return json.load(f)


def buffer_value(key: str, shape: list[int]) -> torch.Tensor:
    """What spmkit computes for a release's non-learnable buffer (checked against the recorded hashes)."""
    if key.endswith("relative_position_index"):
        s = int(shape[0] ** 0.5)
        return relative_position_index(s, s)
    ws, g = int(shape[1] ** 0.5), int(shape[0] ** 0.5)
    return shifted_window_mask(g * ws, g * ws, (ws, ws), (ws // 2, ws // 2))


def is_buffer(key: str) -> bool:
    return key.endswith(("relative_position_index", "attn_mask"))


def meta_state_dict(name: str) -> dict[str, torch.Tensor]:
    return {k: buffer_value(k, s) if is_buffer(k) else torch.empty(s, dtype=getattr(torch, dt), device="meta")
            for k, (s, dt) in layout(name)["keys"].items()}


def rename(conv_name: str, meta_sd: dict, key: str) -> str:
    for pattern, repl in CONVERTERS.get(conv_name)().rules(meta_sd):
        key = re.sub(pattern, repl, key)
    return key


def official_like(name: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights in the release's layout: the recorded keys whose spmkit counterpart the (small)
    model has, with the release's shapes (1x1 convs, (1, C, 1, 1) layer scales) and its buffers."""
    conv_name = OFFICIAL[name][0]
    meta = meta_state_dict(name)
    own = model.state_dict()
    out = {}
    for key, (shape, _) in layout(name)["keys"].items():
        new = rename(conv_name, meta, key)
        if is_buffer(key):
            block = re.match(r"(stages\.\d+\.blocks\.\d+\.)", new)
            if block and any(k.startswith(block.group(1)) for k in own):
                out[key] = meta[key].clone()
        elif new in own:
            t = own[new].clone()
            if len(shape) != t.dim():
                sizes = iter(t.shape)
                t = t.reshape([1 if s == 1 else next(sizes) for s in shape])
            out[key] = t
    return out


def tiny_model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = spmkit.create_model(OFFICIAL[name][1], overrides=TINY.get(name, []))
    with torch.no_grad():  # random values everywhere (layer scales, BN statistics, zero-init offsets)
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                v.copy_(torch.rand_like(v) + 0.5 if "running_var" in k else torch.randn_like(v) * 0.05)
    return model.eval()


# -- every recorded layout converts strictly into its full-size blueprint (meta device) --------------


def test_every_release_has_a_recorded_layout_and_every_recording_a_release() -> None:
    recorded = {p.name.removesuffix(".json.gz") for p in LAYOUTS.glob("*.json.gz")}
    assert recorded == set(OFFICIAL)
    assert len(OFFICIAL) >= 27
    for name, (conv, _) in OFFICIAL.items():
        assert conv in CONVERTERS, (name, conv)
        assert all(layout in CONVERTERS for layout in releases()[name].layouts()), name


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_layout_converts_strictly(name: str) -> None:
    conv_name, blueprint = OFFICIAL[name]
    sd = meta_state_dict(name)
    assert detect_layout(sd) == conv_name
    _, converted = convert_state_dict(sd)
    model = spmkit.create_model(blueprint, device="meta")
    report = fit_report(converted, model.state_dict())
    assert not report.missing and not report.unexpected and not report.skipped_shape, report
    assert sum(p.numel() for p in model.parameters()) == layout(name)["params"]


@pytest.mark.parametrize("name", [n for n in sorted(OFFICIAL) if layout(n)["buffer_sha256"]])
def test_buffers_spmkit_computes_are_the_releases(name: str) -> None:
    for key, digest in layout(name)["buffer_sha256"].items():
        t = buffer_value(key, layout(name)["keys"][key][0])
        t = t.float() if key.endswith("attn_mask") else t.long()
        assert hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest() == digest, key


# -- values: converted small models equal the originals --------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY))
def test_values_and_outputs_survive_conversion(name: str) -> None:
    model = tiny_model(name)
    official = official_like(name, model)
    _, converted = convert_state_dict(official)
    own = model.state_dict()
    assert set(converted) == set(own)
    for k, v in own.items():
        assert torch.equal(converted[k], v), k
    fresh = spmkit.create_model(OFFICIAL[name][1], overrides=TINY.get(name, [])).eval()
    load_weights(fresh, official)
    size = model.blueprint.image_size
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=1e-4, atol=1e-5)


def test_glnet_conversion_equals_hand_built_reference() -> None:
    """MultiheadAttention, the 1x1-conv MLP with residual depthwise conv, and (1, C, 1, 1) layer scales
    of the release, rebuilt from torch modules, give what the converted spmkit block gives."""
    name = "glnet_16g"
    model = tiny_model(name)
    official = official_like(name, model)
    fresh = spmkit.create_model("glnet_16g", overrides=TINY[name]).eval()
    load_weights(fresh, official)
    C, hw = 64, (4, 4)  # stage 2 (index 1): dim 64, MLP ratio 3
    p = "stages.1.blocks.0."
    mlp = nn.Sequential(nn.Conv2d(C, 3 * C, 1), nn.Conv2d(3 * C, 3 * C, 3, padding=1, groups=3 * C),
                        nn.GELU(), nn.Conv2d(3 * C, C, 1))
    mlp.load_state_dict({f"{i}.{w}": official[f"{p}mlp.{i}.{w}"] for i in (0, 1, 3) for w in ("weight", "bias")})
    x = torch.randn(1, C, *hw)
    h = mlp[0](x)
    ref = mlp[3](mlp[2](h + mlp[1](h)))
    ours = fresh.stages[1].blocks[0].mlp(x.flatten(2).transpose(1, 2), hw)
    torch.testing.assert_close(ours, ref.flatten(2).transpose(1, 2), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fresh.stages[1].blocks[0].ls1.gamma, official[p + "ls1.gamma"].flatten())
    # stage 3 block 1 is an MHSA block: nn.MultiheadAttention in the release
    q = "stages.2.blocks.1."
    C3 = 96
    mha = nn.MultiheadAttention(C3, 3, batch_first=True)
    mha.load_state_dict({k.removeprefix(q + "mha_op."): v for k, v in official.items() if k.startswith(q + "mha_op.")})
    t = torch.randn(1, 16, C3)
    ref = mha(t, t, t, need_weights=False)[0]
    torch.testing.assert_close(fresh.stages[2].blocks[1].mixer(t, (4, 4)), ref, rtol=1e-4, atol=1e-5)


def test_microsoft_swin_equals_timm_swin() -> None:
    """timm's Swin, its keys moved by hand to the Microsoft layout (merging at the end of a stage, ``head``,
    persistent index and mask buffers), converts into spmkit's swin_t with equal outputs."""
    import timm

    ref = timm.create_model("swin_tiny_patch4_window7_224", embed_dim=16, depths=(2, 2, 2, 2),
                            num_heads=(1, 1, 2, 2)).eval()
    sd = {}
    for k, v in ref.state_dict().items():
        k = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m.group(1)) - 1}.downsample.", k)
        sd[k.replace("head.fc.", "head.")] = v
    for i, res in enumerate((56, 28, 14, 7)):
        for j in range(2):
            sd[f"layers.{i}.blocks.{j}.attn.relative_position_index"] = relative_position_index(7, 7)
            if j == 1 and res > 7:
                sd[f"layers.{i}.blocks.{j}.attn_mask"] = shifted_window_mask(res, res, (7, 7), (3, 3))
    assert detect_layout(sd) == "swin"
    model = spmkit.create_model("swin_t", overrides=_dims((16, 32, 64, 128), (1, 1, 2, 2), (2, 2, 2, 2))).eval()
    load_weights(model, sd)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-5)


# -- wrong files fail with the keys ----------------------------------------------------------------------


def _lit_s() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    model = tiny_model("lit_s")
    return model, official_like("lit_s", model)


def test_misnamed_or_missing_tensor_fails_listing_keys() -> None:
    model, sd = _lit_s()
    target = spmkit.create_model("lit_s", overrides=TINY["lit_s"])
    before = target.stem.proj.weight.clone()
    bad = dict(sd)
    bad["layers.0.blocks.0.mlp.fc9.weight"] = bad.pop("layers.0.blocks.0.mlp.fc1.weight")
    del bad["head.bias"]
    with pytest.raises(CheckpointError) as err:
        load_weights(target, bad)
    msg = str(err.value)
    assert "stages.0.blocks.0.mlp.fc1.weight" in msg and "head.fc.bias" in msg  # unset in the model
    assert "stages.0.blocks.0.mlp.fc9.weight" in msg  # unused from the file
    assert torch.equal(target.stem.proj.weight, before)  # nothing loaded
    other = spmkit.create_model("lit_s", overrides=TINY["lit_s"] + ["head.num_classes=7"])
    with pytest.raises(CheckpointError, match=r"head\.fc\.weight \[1000, 64\] vs \[7, 64\]"):
        load_weights(other, sd)


def test_wrong_buffer_is_refused() -> None:
    _, sd = _lit_s()
    key = next(k for k in sd if k.endswith("relative_position_index"))
    sd[key] = sd[key].flip(0)
    with pytest.raises(CheckpointError, match="relative position index"):
        convert_state_dict(sd)


def test_detection_errors_and_from_override() -> None:
    with pytest.raises(CheckpointError, match="cannot tell.*glnet.*--from"):
        detect_layout({"foo.weight": torch.zeros(1)})
    _, sd = _lit_s()
    with pytest.raises(CheckpointError):  # the wrong layout named by hand: the keys do not fit
        load_weights(spmkit.create_model("lit_s", overrides=TINY["lit_s"]), sd, from_="pvt_v1")
    load_weights(spmkit.create_model("lit_s", overrides=TINY["lit_s"]), sd, from_="lit")


# -- checkpoint files: wrappers, EMA, DataParallel, timm train.py ------------------------------------------


def test_wrappers_are_unwrapped(tmp_path: Path) -> None:
    model, sd = _lit_s()
    other = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    files = {
        "plain": sd,
        "model": {"model": sd, "epoch": 3},
        "state_dict_module": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
        "ema": {"model": other, "model_ema": sd},
    }
    for name, obj in files.items():
        torch.save(obj, tmp_path / f"{name}.pth")
        got = read_checkpoint(tmp_path / f"{name}.pth", ema=name == "ema")
        assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd), name
    assert torch.equal(read_checkpoint(tmp_path / "ema.pth")["head.weight"], other["head.weight"])
    with pytest.raises(CheckpointError, match="no EMA"):
        read_checkpoint(tmp_path / "plain.pth", ema=True)


def test_timm_train_checkpoint_with_namespace(tmp_path: Path) -> None:
    model = tiny_model("pvt_v2_b0")
    import timm

    ref = timm.create_model("pvt_v2_b0")
    ckpt = {"epoch": 5, "arch": "pvt_v2_b0", "state_dict": ref.state_dict(), "version": 2,
            "args": argparse.Namespace(model="pvt_v2_b0", lr=1e-3), "metric": 0.5}
    path = tmp_path / "checkpoint-5.pth.tar"
    torch.save(ckpt, path)
    with pytest.raises(Exception):  # plain weights-only loading refuses the Namespace
        torch.load(path, weights_only=True)
    report = load_weights(model, path)
    assert report.layout == "timm"
    torch.testing.assert_close(model.stem.proj.weight, ref.patch_embed.proj.weight)


# -- the interface lines ----------------------------------------------------------------------------------

CLI_CASES = ["swin_t", "pvt_tiny", "pvt_v2_b0", "pvt_tiny_spm", "lit_ti", "lit_s",
             "groupmixformer_b", "glnet_stl", "glnet_16g"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_convert_then_create_model(tmp_path: Path, name: str) -> None:
    model = tiny_model(name)
    sd = official_like(name, model)
    blueprint, overrides = OFFICIAL[name][1], TINY.get(name, [])
    sets = [a for o in overrides for a in ("--set", o)]
    torch.save(sd, tmp_path / "official.pth")
    torch.save({"model": sd}, tmp_path / "wrapped.pth")
    for src in ("official.pth", "wrapped.pth"):
        out = tmp_path / ("out.pt" if src == "official.pth" else "out_wrapped.pt")  # never over an existing file
        res = CliRunner().invoke(app, ["convert", str(tmp_path / src), "-b", blueprint, "-o", str(out), *sets])
        assert res.exit_code == 0, res.output
        assert f"layout {OFFICIAL[name][0]}" in res.output and "0 freshly initialised" in res.output
    a = spmkit.create_model(blueprint, overrides=overrides, checkpoint_path=str(tmp_path / "out.pt"))
    b = spmkit.create_model(blueprint, overrides=overrides, checkpoint_path=str(tmp_path / "official.pth"))
    for k, v in model.state_dict().items():
        assert torch.equal(a.state_dict()[k], v) and torch.equal(b.state_dict()[k], v), k


def test_cli_convert_fails_in_one_paragraph_on_a_partial_file(tmp_path: Path) -> None:
    model = tiny_model("swin_t")
    sd = official_like("swin_t", model)
    sd = {k: v for k, v in sd.items() if "downsample" not in k}  # the 11 tensors the old convert left fresh
    torch.save(sd, tmp_path / "partial.pth")
    res = CliRunner().invoke(app, ["convert", str(tmp_path / "partial.pth"), "-b", "swin_t", "-o",
                                   str(tmp_path / "out.pt"), *[a for o in TINY["swin_t"]
                                                                for a in ("--set", o)]])
    assert res.exit_code == 2 and "stages.1.downsample.reduction.weight" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "out.pt").exists()


def test_timm_pretrained_file_local_dir_and_save_pretrained(tmp_path: Path) -> None:
    import timm

    from spmkit.convert.pretrained import save_pretrained

    model = spmkit.create_model("tiny_glnet").eval()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pth")
    x = torch.randn(1, 3, 64, 64)
    a = timm.create_model("spmkit_tiny_glnet", pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(tmp_path / "w.pth"))).eval()
    save_pretrained(model, tmp_path / "folder")
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["config.json", "model.safetensors"]
    b = timm.create_model(f"local-dir:{tmp_path / 'folder'}", pretrained=True).eval()
    c = spmkit.create_model(f"local-dir:{tmp_path / 'folder'}").eval()
    d = timm.create_model("spmkit_tiny_glnet", pretrained=True, num_classes=3,
                          pretrained_cfg_overlay=dict(file=str(tmp_path / "w.pth")))
    with torch.no_grad():
        want = model(x)
        for m in (a, b, c):
            torch.testing.assert_close(m(x), want)
    assert d.head.fc.weight.shape[0] == 3 and torch.equal(d.stem.proj1.weight, model.stem.proj1.weight)
    with pytest.raises(CheckpointError, match="hosts no pretrained weights"):
        timm.create_model("spmkit_tiny_glnet", pretrained=True)


def test_eval_weights_and_train_init_read_official_files(tmp_path: Path) -> None:
    from imagefolder_util import make_imagefolder

    from spmkit.convert.init_weights import load_init_weights

    name = "glnet_stl"
    overrides = [*TINY[name], "head.num_classes=3"]
    torch.manual_seed(0)
    model = spmkit.create_model("glnet_stl", overrides=overrides).eval()
    torch.save({"model": official_like(name, model)}, tmp_path / "glnet_stl.pth")
    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=1, val_per_class=2)
    res = CliRunner().invoke(app, ["eval", "--blueprint", "glnet_stl", "--weights", str(tmp_path / "glnet_stl.pth"),
                                   "--data", str(data), "--workers", "0", "--json",
                                   *[a for o in overrides for a in ("--model-set", o)]])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["images"] == 6
    # --init: a GLNet-STL + SPM model starts from the baseline's official weights; its SPM layers stay fresh
    spm = spmkit.create_model("glnet_stl_spm", overrides=overrides)
    report = load_init_weights(spm, tmp_path / "glnet_stl.pth")
    assert report["layout"] == ["glnet"] and report["missing"] and all(".downsample." in k for k in report["missing"])
    assert torch.equal(spm.stages[0].blocks[0].mixer.relation_mha.in_proj_weight,
                       model.stages[0].blocks[0].mixer.relation_mha.in_proj_weight)


class _TrainingConfig(dict):
    """Stands for a config object (yacs CfgNode, OmegaConf) some trainers pickle next to the weights."""


def test_checkpoint_with_other_pickled_objects_is_refused_clearly(tmp_path: Path) -> None:
    torch.save({"model": {"stem.proj.weight": torch.zeros(1)}, "config": _TrainingConfig(lr=1)}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match="pickled .*_TrainingConfig besides the weights"):
        read_checkpoint(tmp_path / "c.pth")
