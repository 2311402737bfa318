"""Weights as data: the blueprints' ``release:`` blocks (official code, layout, published weights), reference
figures that belong to one file (never inherited through ``extends``), ``first_conv`` of every stem,
``spmkit list`` and ``spmkit convert`` reading the data, docs/zoo.md generated from it, and the parity
script's argument handling (the official code itself is not here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import spmkit
from spmkit.blueprint.loader import load_blueprint, read_raw
from spmkit.blueprint.schema import OWN_FIELDS
from spmkit.builder import build_model
from spmkit.cli.app import app
from spmkit.errors import BlueprintError
from spmkit.io.safe_yaml import read_yaml_file

from conftest import all_blueprint_files

ALL = all_blueprint_files()
CHILDREN = [p for p in ALL if "extends" in (read_yaml_file(p) or {})]
runner = CliRunner()


def _own(path: Path, key: str):
    """What the file itself writes for ``key`` (its mapping, then its own dotted ``key.x`` lines)."""
    data = read_yaml_file(path) or {}
    own = data.get(key)
    dotted = {k.split(".", 1)[1]: v for k, v in data.items() if isinstance(k, str) and k.startswith(f"{key}.")}
    if own is None and not dotted:
        return None
    return {**(own or {}), **dotted}


def _parent(path: Path) -> Path:
    parent = read_yaml_file(path)["extends"]
    rel = path.parent / parent
    return rel if rel.is_file() else spmkit.list_blueprints()[parent]


@pytest.mark.parametrize("path", CHILDREN, ids=[p.stem for p in CHILDREN])
def test_reference_and_release_belong_to_the_file_that_writes_them(path: Path) -> None:
    bp, parent = load_blueprint(path), load_blueprint(_parent(path))
    assert bp.reference == (_own(path, "reference") or {})
    own_release = _own(path, "release")
    assert (bp.release is None) == (own_release is None)
    if parent.reference and bp.reference == parent.reference:  # only when the child writes the same figures
        assert _own(path, "reference") == parent.reference
    if bp.release is not None and parent.release is not None:
        assert bp.release.code != parent.release.code or bp.release == parent.release


def test_the_interface_figures_are_each_blueprints_own() -> None:
    gmf_l, gmf_t = load_blueprint("groupmixformer_l").reference, load_blueprint("groupmixformer_t").reference
    assert 3.7 not in gmf_l.values() and gmf_l["paper_gflops"] == 36.1 and gmf_t["paper_gflops"] == 3.7
    assert 4.5 not in load_blueprint("glnet_16g").reference.values()
    assert load_blueprint("glnet_16g").reference["paper_gflops"] == 16.7
    b1, b2 = load_blueprint("pvt_v2_b1").reference, load_blueprint("pvt_v2_b2").reference
    assert not {k: v for k, v in b2.items() if b1.get(k) == v}  # no figure of pvt_v2_b1
    assert "timm_gmacs_without_attention" not in b2 and b2["timm"] == "pvt_v2_b2"


def test_a_users_variant_gets_no_reference_and_no_release_but_is_compared(tmp_path: Path) -> None:
    from spmkit.blueprint.reference import compare_with_reference

    f = tmp_path / "mine.yaml"
    f.write_text("extends: pvt_v2_b2\nname: mine\nstages.2.depth: 4\n")
    bp = load_blueprint(f)
    assert bp.reference == {} and bp.release is None
    raw, _ = read_raw(f)
    assert not set(OWN_FIELDS) & set(raw)
    params = sum(p.numel() for p in build_model(bp, device="meta").parameters())
    cmp = compare_with_reference(bp, params)
    assert cmp.reference_name == "pvt_v2_b2" and cmp.reference_params == 25_362_856
    assert list(cmp.changed) == ["stages.2.depth"] and cmp.delta < 0


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_first_conv_is_the_stems_image_conv(path: Path) -> None:
    model = spmkit.create_model(path, device="meta")
    name = model.pretrained_cfg["first_conv"]
    assert name and name.startswith("stem.")
    conv = model.get_submodule(name)
    assert isinstance(conv, torch.nn.Conv2d) and conv.in_channels == 3
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first is conv


def test_first_conv_follows_in_chans() -> None:
    model = spmkit.create_model("tiny_glnet", overrides=["in_chans=1"], device="meta")
    assert model.pretrained_cfg["first_conv"] == "stem.proj1" and model.stem.proj1.in_channels == 1


_RELEASE = {"code": {"repo": "a/b", "file": "m.py", "model": "m"}, "layout": "pvt_v1",
            "weights": [{"tag": "in1k", "url": "https://example.org/m.pth", "metrics": {"top1": 70.0}}]}


@pytest.mark.parametrize("edit, where", [
    (lambda r: r["weights"].append(dict(r["weights"][0])), "release"),  # a repeated tag
    (lambda r: r["weights"][0].update(sha256="abc"), "release.weights.0.sha256"),
    (lambda r: r["weights"][0].update(top1=70.0), "release.weights.0.top1"),  # not a field
    (lambda r: r["weights"][0].update(url="ftp://x"), "release.weights.0.url"),
    (lambda r: r["weights"][0]["metrics"].update(top1=True), "release.weights.0.metrics.top1"),
    (lambda r: r.pop("layout"), "release.layout"),
])
def test_release_blocks_are_validated(edit, where: str) -> None:
    import copy

    release = copy.deepcopy(_RELEASE)
    edit(release)
    data = {**read_raw("tiny_pvt")[0], "release": release}
    with pytest.raises(BlueprintError) as err:
        load_blueprint(data)
    assert where in str(err.value)
    assert load_blueprint({**read_raw("tiny_pvt")[0], "release": _RELEASE}).release.weights[0].metrics == {"top1": 70.0}


def test_list_shows_the_published_weights() -> None:
    res = runner.invoke(app, ["list", "--json"])
    assert res.exit_code == 0, res.output
    weights = json.loads(res.stdout)["weights"]
    assert len(weights) >= 27 and "tiny_pvt" not in weights and "pvt_tiny_conv" not in weights
    assert weights["glnet_16g"]["weights"][0]["ema"] is True and weights["glnet_16g"]["layout"] == "glnet"
    assert weights["pvt_tiny"]["weights"][0]["metrics"] == {"top1": 75.1}
    assert weights["pvt_tiny"]["weights"][0]["eval"] == {"img_size": 224, "crop_pct": 0.875, "interpolation": "bicubic"}
    text = " ".join(runner.invoke(app, ["list"]).output.split())
    assert "published weights" in text and "top1 81.2, top5 95.5 (224, crop 0.875, bicubic)" in text


def test_convert_names_the_release_layout_when_the_keys_do_not_tell(tmp_path: Path) -> None:
    torch.save({"backbone.odd.weight": torch.zeros(2)}, tmp_path / "odd.pth")
    res = runner.invoke(app, ["convert", str(tmp_path / "odd.pth"), "-b", "pvt_v2_b0", "-o", str(tmp_path / "o.pt")])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "pvt_v2_b0's release data (whai362/PVT) names layouts pvt_v2, timm" in text
    assert "--from pvt_v2" in text and "Traceback" not in res.output


def test_docs_zoo_is_generated_from_the_data() -> None:
    from benchmarks.docsection import read_section
    from benchmarks.zoo_docs import DOC, stale_sections

    assert stale_sections() == [], "docs/zoo.md is out of date: PYTHONPATH=. python benchmarks/zoo_docs.py --write"
    models = read_section("zoo_models", DOC)
    rows = [line for line in models.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == list(spmkit.list_blueprints())  # every blueprint, once


def test_parity_script_without_checkouts_says_what_it_needs(capsys, tmp_path: Path) -> None:
    from benchmarks.official_parity import main

    assert main([]) == 0
    err = capsys.readouterr().err
    assert "no checkouts given, nothing compared" in err and "--checkout OWNER/NAME=PATH" in err
    assert "whai362/PVT" in err and "rayleizhu/GLMix" in err
    assert main(["--checkout", "whai362/PVT"]) == 2 and "expected OWNER/NAME=PATH" in capsys.readouterr().err
    assert main(["--checkout", f"whai362/PVT={tmp_path / 'nope'}"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["--checkout", f"someone/else={tmp_path}"]) == 2 and "no builder" in capsys.readouterr().err
    assert main(["--only", "tiny_pvt"]) == 2 and "no release block in tiny_pvt" in capsys.readouterr().err
    # an empty folder as the checkout: the model's file is missing, the row says so, others are skipped
    assert main(["--checkout", f"whai362/PVT={tmp_path}", "--only", "pvt_tiny", "--only", "swin_t"]) == 0
    out = capsys.readouterr().out
    assert "`pvt_tiny` (" in out and "classification/pvt.py does not exist" in out
    assert "`swin_t` (no checkout of microsoft/Swin-Transformer)" in out


def test_benchmarks_zoo_table_covers_every_full_size_blueprint() -> None:
    from benchmarks.docsection import read_section

    table = read_section("zoo_cpu")
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "x" in line}
    full = {n for n, p in spmkit.list_blueprints().items() if p.parent.name != "tiny"}
    assert full <= rows, f"not in docs/benchmarks.md's zoo table: {sorted(full - rows)} (benchmarks/zoo_table.py)"
