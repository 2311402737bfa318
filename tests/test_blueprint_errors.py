"""Every validation error names the file, the dotted field path and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from spmkit import BlueprintError, load_blueprint
from spmkit.builder import build_model


def _error(src, overrides=()) -> BlueprintError:
    with pytest.raises(BlueprintError) as info:
        bp = load_blueprint(src, overrides)
        build_model(bp, device="meta")
    return info.value


def _paths(err: BlueprintError) -> list[str]:
    return [i.path for i in err.issues]


def test_unknown_component_suggests_nearest_and_names_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("extends: tiny_swin\nname: bad\nmerging: {type: patch_mergin}\n")
    err = _error(f)
    assert str(f) in str(err)
    assert _paths(err) == ["merging.type"]
    assert "Did you mean 'patch_merging'" in str(err) and "Registered merging types" in str(err)


def test_unknown_parameter_lists_allowed() -> None:
    err = _error("tiny_swin", ["stages.0.mixer={type: window, windowsize: 4}"])
    assert _paths(err) == ["stages.0.mixer.windowsize"]
    assert "Did you mean 'window_size'" in str(err) and "Allowed:" in str(err)


def test_wrong_type_reports_path() -> None:
    err = _error("tiny_swin", ["stages.1.depth=two"])
    assert _paths(err) == ["stages.1.depth"]
    assert "integer" in str(err)


def test_unknown_top_level_key_suggests_field() -> None:
    err = _error("tiny_swin", ["drop_path_rat=0.1"])
    assert _paths(err) == ["drop_path_rat"] and "'drop_path_rate'" in str(err)


def test_dim_not_divisible_by_heads() -> None:
    err = _error("tiny_swin", ["stages.1.heads=3"])
    assert any(p.startswith("mixer.") and "stages.1" in p for p in _paths(err))
    assert "not divisible by heads 3" in str(err)


def test_window_that_does_not_divide_the_map() -> None:
    err = _error("tiny_swin", ["window_size=5"])
    assert "window_size 5 does not divide the 16x16 feature map" in str(err)
    assert "allow_padding" in str(err)
    # allowed when the user opts into padding
    build_model(load_blueprint("tiny_swin", ["window_size=5", "allow_padding=true"]), device="meta")


def test_stage_extra_nobody_takes() -> None:
    err = _error("tiny_pvt", ["stages.0.sr_ration=2"])
    assert _paths(err) == ["stages.0.sr_ration"] and "'sr_ratio'" in str(err)


def test_dim_change_without_merging() -> None:
    err = _error("tiny_swin", ["stages.2.merging=null"])
    assert _paths(err) == ["stages.2.dim"]


def test_class_token_needs_a_mixer_that_supports_it() -> None:
    err = _error("tiny_swin", ["stages.3.cls_token=true"])
    assert "does not support class tokens" in str(err)


def test_missing_required_field_and_bad_yaml(tmp_path: Path) -> None:
    f = tmp_path / "nostages.yaml"
    f.write_text("name: x\nstem: {type: patch_embed}\nmixer: null\n")
    assert _paths(_error(f)) == ["stages"]
    g = tmp_path / "broken.yaml"
    g.write_text("name: [unclosed\n")
    assert "not valid YAML" in str(_error(g))


def test_unknown_blueprint_name_suggests() -> None:
    err = _error("tiny_swn")
    assert "Did you mean 'tiny_swin'" in str(err)


def test_override_errors() -> None:
    assert "out of range" in str(_error("tiny_swin", ["stages.9.depth=1"]))
    assert "KEY=VALUE" in str(_error("tiny_swin", ["stages.0.depth"]))


def test_circular_extends(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    assert "circular extends" in str(_error(tmp_path / "a.yaml"))


def test_no_code_execution_from_yaml(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    assert "not valid YAML" in str(_error(f))
