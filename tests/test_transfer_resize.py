"""Issue 19: size-dependent tables (position embeddings, relative-position bias tables) follow the model on
every load, resized by the component that owns them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import spmkit
from spmkit.blueprint import list_blueprints, load_blueprint
from spmkit.convert.load import load_weights
from spmkit.convert.resize import resize_tables
from spmkit.errors import CheckpointError

from conftest import tiny_blueprint_files


def _owner(model: nn.Module, key: str) -> nn.Module:
    """The module that holds parameter/buffer ``key``."""
    return model.get_submodule(key.rpartition(".")[0])


def _size_dependent(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    assert set(a) == set(b), "a model's keys must not depend on its input size"
    return [k for k in a if tuple(a[k].shape) != tuple(b[k].shape)]


def _check_round_trip(small: nn.Module, big: nn.Module, where: str) -> list[str]:
    """Every table whose shape depends on the size is resized by its owner's ``resize_state_dict``, both ways;
    at the same size nothing changes. Returns the size-dependent keys."""
    sa, sb = small.state_dict(), big.state_dict()
    keys = _size_dependent(sa, sb)
    for k in keys:
        owner = _owner(big, k)
        assert hasattr(type(owner), "resize_state_dict"), (
            f"{where}: {k} ({type(owner).__name__}) depends on the input size but its component declares no "
            f"resize_state_dict")
    for src, dst in ((sa, big), (sb, small)):
        out, resized = resize_tables(dst, src, where)
        assert sorted(resized) == sorted(keys), where
        own = dst.state_dict()
        assert all(tuple(out[k].shape) == tuple(own[k].shape) for k in own), where
        assert all(out[k] is src[k] for k in own if k not in keys), f"{where}: only the tables change"
    same, resized = resize_tables(small, sa, where)
    assert resized == [] and all(same[k] is sa[k] for k in sa), f"{where}: at the same size nothing changes"
    return keys


@pytest.mark.parametrize("path", tiny_blueprint_files(), ids=lambda p: p.stem)
def test_every_size_dependent_table_of_a_tiny_blueprint_round_trips(path: Path) -> None:
    """Every registered component runs in a tiny blueprint (test_registry); built at two sizes (and two
    windows where the blueprint has one), each of its size-dependent tables resizes both ways."""
    bp = load_blueprint(path)
    small = spmkit.create_model(path)
    big = spmkit.create_model(path, img_size=bp.img_size * 2)
    _check_round_trip(small, big, path.stem)
    if getattr(bp, "window_size", None):
        other = spmkit.create_model(path, overrides=[f"window_size={bp.window_size * 2}"], img_size=bp.img_size * 2)
        assert _check_round_trip(big, other, f"{path.stem} window"), "a bigger window must change a table"


def test_the_tiny_blueprints_build_every_registered_component() -> None:
    """So the round trip above covers every registered stem, merging, mixer, block and pos_embed class."""
    from spmkit.registry import BLOCKS, MERGING, MIXERS, POS_EMBEDS, STEMS, load_components

    load_components()
    built = {type(m) for path in tiny_blueprint_files() for m in spmkit.create_model(path, device="meta").modules()}
    registered = {(kind.kind, name): cls for kind in (STEMS, MERGING, MIXERS, BLOCKS, POS_EMBEDS)
                  for name, cls in kind.items()}
    missing = [f"{kind}:{name}" for (kind, name), cls in registered.items()
               if isinstance(cls, type) and cls not in built]
    assert not missing, f"registered components no tiny blueprint builds: {missing}"


def test_every_builtin_blueprint_resizes_its_tables_to_384() -> None:
    """Full-size builtin blueprints (built on the meta device: shapes only) at 224 and 384 (Swin's windows
    of 7 at 12, as the papers fine-tune them)."""
    found: set[str] = set()
    for name in list_blueprints():
        bp = load_blueprint(name)
        if bp.img_size != 224:
            continue
        small = spmkit.create_model(name, device="meta")
        try:
            window = ["window_size=12"] if getattr(bp, "window_size", None) == 7 else []
            big = spmkit.create_model(name, overrides=window, img_size=384, device="meta")
        except Exception as e:  # a window that does not divide the 384 maps: not a transfer this test covers
            assert "window_size" in str(e), f"{name}: {e}"
            continue
        found |= {type(_owner(big, k)).__name__ for k in _check_round_trip(small, big, name)}
    assert {"AbsolutePosEmbed", "WindowAttention", "GlobalAttention"} <= found, found


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name", ["tiny_pvt", "tiny_lit"])
def test_resized_model_computes_what_the_source_computes_at_the_new_size(name: str, tmp_path: Path) -> None:
    """Absolute embeddings (PVT v1, LIT-Ti stage 4) and LIT-S's global relative-position table: the model
    built at 128 and loaded from the 64 file equals the 64 model run on 128 inputs."""
    src = spmkit.create_model(name).eval()
    path = tmp_path / "w64.pth"
    torch.save(src.state_dict(), path)
    big = spmkit.create_model(name, img_size=128, checkpoint_path=path).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert _rel(big(x), src(x)) < 1e-5
        # and not by accident: the tables were resized, not left at their initialisation
        fresh = spmkit.create_model(name, img_size=128).eval()
        assert _rel(fresh(x), src(x)) > 1e-3


def test_pvt_tiny_full_size_at_288_equals_224_model(tmp_path: Path) -> None:
    src = spmkit.create_model("pvt_tiny").eval()
    path = tmp_path / "pvt224.pth"
    torch.save(src.state_dict(), path)
    big = spmkit.create_model("pvt_tiny", overrides=["img_size=288"], checkpoint_path=path).eval()
    x = torch.randn(1, 3, 288, 288)
    with torch.no_grad():
        assert _rel(big(x), src(x)) < 1e-4


_SWIN = dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))


def _small_swin_overrides() -> list[str]:
    return [f"stages.{i}.{k}={v}" for i, (d, h) in enumerate(zip(_SWIN["depths"], _SWIN["num_heads"]))
            for k, v in (("dim", 16 * 2**i), ("depth", d), ("heads", h))]


@pytest.mark.parametrize("layout", ["timm", "spmkit"])
def test_swin_window_transfer_equals_timm(layout: str, tmp_path: Path) -> None:
    """swin_t (narrowed) saved at 224 / window 7, loaded at 384 / window 12: equal to timm's own transfer."""
    timm = pytest.importorskip("timm")
    src = timm.create_model("swin_tiny_patch4_window7_224", **_SWIN)
    timm_file = tmp_path / "timm224.pth"
    torch.save(src.state_dict(), timm_file)
    file = timm_file
    if layout == "spmkit":
        file = tmp_path / "spmkit224.pth"
        torch.save(spmkit.create_model("swin_t", overrides=_small_swin_overrides(), checkpoint_path=timm_file)
                   .state_dict(), file)
    ours = spmkit.create_model("swin_t", overrides=[*_small_swin_overrides(), "img_size=384", "window_size=12"],
                               checkpoint_path=file).eval()
    ref = timm.create_model("swin_tiny_patch4_window7_224", img_size=384, window_size=12, pretrained=True,
                            pretrained_cfg_overlay=dict(file=str(timm_file)), **_SWIN).eval()
    x = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        assert _rel(ours(x), ref(x)) < 1e-4
    key = "stages.0.blocks.0.attn.relative_position_bias_table"
    assert ours.state_dict()[key].shape == (23 * 23, 1)


def test_lit_s_at_384_loads_its_224_file_strictly(tmp_path: Path) -> None:
    src = spmkit.create_model("lit_s", device="meta")
    sd = {k: torch.randn(v.shape) for k, v in src.state_dict().items()}
    path = tmp_path / "lit224.pth"
    torch.save(sd, path)
    model = spmkit.create_model("lit_s", overrides=["img_size=384"], device="meta")
    model.to_empty(device="cpu")
    report = load_weights(model, path, strict=True)
    assert len(report.resized) == 8 and not report.skipped_shape
    assert all("relative_position_bias_table" in k for k in report.resized)


def test_a_table_that_cannot_be_resized_is_an_error_naming_it() -> None:
    model = spmkit.create_model("tiny_pvt")
    sd = model.state_dict()
    sd["stages.1.pos_embed.weight"] = torch.zeros(1, 17, 8)  # another width: no resize can fit it
    for strict in (True, False):
        with pytest.raises(CheckpointError, match=r"stages\.1\.pos_embed\.weight"):
            load_weights(model, sd, strict=strict)
    swin = spmkit.create_model("tiny_swin")
    sd = swin.state_dict()
    sd["stages.0.blocks.0.attn.relative_position_bias_table"] = torch.zeros(49, 3)  # 3 heads, model has 1
    with pytest.raises(CheckpointError, match=r"relative_position_bias_table.*heads"):
        load_weights(swin, sd, strict=False)


def test_init_never_skips_a_size_dependent_table(tmp_path: Path) -> None:
    """``--init`` at another size: tables are resized (not 'skipped'); another class count still skips the head."""
    from spmkit.convert.init_weights import load_init_weights

    src = spmkit.create_model("tiny_lit")
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    model = spmkit.create_model("tiny_lit", img_size=96, num_classes=3)
    report = load_init_weights(model, path)
    assert report["skipped"] == ["head.fc.weight", "head.fc.bias"]
    assert sorted(report["resized"]) == ["stages.2.blocks.0.attn.relative_position_bias_table",
                                         "stages.3.pos_embed.weight"]


def test_train_init_at_another_size_and_window_resizes_and_reports_layer_decay(tmp_path: Path) -> None:
    """``spmkit train --init W --model-set window_size=8 --set img_size=128 --set layer_decay=0.75``: the
    relative-position tables are resized (none skipped), and the summary reports the layer decay."""
    from typer.testing import CliRunner

    from imagefolder_util import make_imagefolder
    from spmkit.cli.app import app

    data = make_imagefolder(tmp_path / "data", classes=2, train_per_class=2, val_per_class=1, size=32)
    init = tmp_path / "w64.pth"
    torch.save(spmkit.create_model("tiny_swin").state_dict(), init)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "train", "--blueprint", "tiny_swin", "--init", str(init), "--model-set", "window_size=8",
        "--set", "img_size=128", "--set", "layer_decay=0.75", "--data", str(data), "--output", str(out),
        "--epochs", "1", "--batch-size", "2", "--workers", "0", "--set", "warmup_epochs=0"])
    assert res.exit_code == 0, res.output
    log = (out / "train.log").read_text()
    assert "6 size-dependent tables resized" in log  # stages 0-2 (window 4 -> 8); stage 3 stays 4x4
    assert not any("skipped" in line and "relative_position" in line for line in log.splitlines())
    assert "2 skipped keys (e.g. head.fc.weight, head.fc.bias)" in log  # 10 classes -> 2: only the head
    assert "layer decay 0.75 over 8 groups" in log


def test_timm_file_and_local_dir_loading_resize_tables(tmp_path: Path) -> None:
    """timm's pretrained-file and ``local-dir:`` loading of ``spmkit_*`` models go through the same resizing."""
    timm = pytest.importorskip("timm")
    from spmkit.convert.pretrained import save_pretrained

    src = spmkit.create_model("pvt_tiny", overrides=["img_size=64"]).eval()
    file = tmp_path / "w64.pth"
    torch.save(src.state_dict(), file)
    folder = save_pretrained(src, tmp_path / "folder")
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        want = src(x)
        a = timm.create_model("spmkit_pvt_tiny", img_size=96, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(file))).eval()
        b = timm.create_model(f"local-dir:{folder}", img_size=96, pretrained=True).eval()
        c = spmkit.create_model(f"local-dir:{folder}", img_size=96).eval()
        for m in (a, b, c):
            assert m.state_dict()["stages.0.pos_embed.weight"].shape[1] == 24 * 24
            assert _rel(m(x), want) < 1e-5


def test_convert_cli_with_blueprint_overrides_resizes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from spmkit.cli.app import app

    torch.save(spmkit.create_model("tiny_pvt").state_dict(), tmp_path / "w64.pth")
    out = tmp_path / "w128.pt"
    res = CliRunner().invoke(app, ["convert", str(tmp_path / "w64.pth"), "-b", "tiny_pvt", "--model-set",
                                   "img_size=128", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "resized 4 size-dependent tables" in res.output and "0 skipped" in res.output
    model = spmkit.create_model("tiny_pvt", img_size=128)
    load_weights(model, out, strict=True)
