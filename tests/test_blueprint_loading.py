"""extends, dotted overrides, defaults vs per-stage settings, cycling."""

from __future__ import annotations

from pathlib import Path

from spmkit import load_blueprint
from spmkit.blueprint import list_blueprints
from spmkit.builder import build_model


def test_extends_with_dotted_overrides() -> None:
    b2 = load_blueprint("pvt_v2_b2")
    assert [s.depth for s in b2.stages] == [3, 4, 6, 3]
    assert [s.dim for s in b2.stages] == [64, 128, 320, 512]  # from b1, which extends b0
    assert b2.stages[0].extras == {"sr_ratio": 8}


def test_child_component_with_type_replaces_parent(tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("extends: tiny_pvt_v2\nname: v\nmerging: {type: patch_merging}\n")
    bp = load_blueprint(f)
    assert bp.merging is not None and bp.merging.type == "patch_merging" and bp.merging.params == {}


def test_set_type_drops_old_parameters() -> None:
    bp = load_blueprint("tiny_pvt_v2", ["merging.type=patch_merging"])
    assert bp.merging.params == {}
    model = build_model(bp, device="meta")
    assert type(model.stages[1].downsample).__name__ == "PatchMerging"


def test_stage_setting_replaces_default_and_extras_merge() -> None:
    bp = load_blueprint("tiny_swin", ["stages.2.mixer={type: window, window_size: 2}", "stages.3.window_size=1"])
    model = build_model(bp, device="meta")
    assert model.stages[2].blocks[0].attn.window_size == (2, 2)
    assert model.stages[3].blocks[0].attn.window_size == (1, 1)  # stage extra beats the top-level extra
    assert model.stages[0].blocks[0].attn.window_size == (4, 4)


def test_mixer_list_cycles_over_blocks() -> None:
    model = build_model(load_blueprint("tiny_swin"), device="meta")
    shifts = [blk.attn.shift_size for blk in model.stages[0].blocks]
    assert shifts == [(0, 0), (2, 2)]


def test_null_mixer_gives_mlp_only_blocks() -> None:
    model = build_model(load_blueprint("tiny_pvt_v2", ["stages.0.mixer=null"]), device="meta")
    blk = model.stages[0].blocks[0]
    assert blk.attn is None and blk.norm1 is None
    assert model.stages[1].blocks[0].attn is not None


def test_drop_path_linear_over_all_blocks() -> None:
    model = build_model(load_blueprint("tiny_swin", ["drop_path_rate=0.5"]), device="meta")
    rates = [getattr(b.drop_path2, "drop_prob", 0.0) for s in model.stages for b in s.blocks]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.5) < 1e-9
    assert all(b > a for a, b in zip(rates, rates[1:]))


def test_builtin_names_are_unique_and_load() -> None:
    names = list_blueprints()
    stems = [p.stem for p in Path(next(iter(names.values()))).parents[1].rglob("*.yaml")]
    assert len(stems) == len(set(stems)), "blueprint file names must be unique across folders"
    for name in names:
        assert load_blueprint(name).name == name, f"{name}: the name field must equal the file name"


def test_dump_round_trips_for_every_builtin_blueprint() -> None:
    """A resolved blueprint (as run folders store it) loads back to the same model."""
    for name in list_blueprints():
        bp = load_blueprint(name)
        again = load_blueprint(bp.model_dump(mode="json"))
        assert again.model_dump(mode="json") == bp.model_dump(mode="json"), name
        a, b = build_model(bp, device="meta"), build_model(again, device="meta")
        assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()], name
