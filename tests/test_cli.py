"""The CLI parses, calls the library and renders; user errors exit 2 without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from spmkit.cli.app import app

runner = CliRunner()


def test_build_table_and_json() -> None:
    res = runner.invoke(app, ["build", "tiny_swin"])
    assert res.exit_code == 0, res.output
    assert "tiny_swin" in res.output and "parameters" in res.output
    res = runner.invoke(app, ["build", "tiny_swin", "--json", "--set", "stages.2.depth=2"])
    data = json.loads(res.stdout)
    assert data["stages"][2]["depth"] == 2 and data["params"] > 0 and data["macs"] > 0
    assert [s["resolution"] for s in data["stages"]] == [[16, 16], [8, 8], [4, 4], [2, 2]]


def test_build_reports_reference_equality() -> None:
    res = runner.invoke(app, ["build", "swin_t"])
    assert res.exit_code == 0 and "equal to timm's swin_tiny_patch4_window7_224: 28,288,354" in " ".join(res.output.split())


def test_build_error_exit_2_no_traceback(tmp_path: Path) -> None:
    res = runner.invoke(app, ["build", "tiny_swin", "--set", "merging.type=patch_mergng"])
    assert res.exit_code == 2
    assert "merging.type" in res.output and "Did you mean 'patch_merging'" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["build", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "no such blueprint file" in res.output


def test_schema_lists_components(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    res = runner.invoke(app, ["schema", "-o", str(out)])
    assert res.exit_code == 0
    schema = json.loads(out.read_text())
    mixers = {v["properties"]["type"]["const"] for v in schema["$defs"]["MixerSpec"]["oneOf"]}
    assert {"window", "sra"} <= mixers
    window = next(v for v in schema["$defs"]["MixerSpec"]["oneOf"] if v["properties"]["type"]["const"] == "window")
    assert "window_size" in window["properties"] and window["additionalProperties"] is False


def test_list_json() -> None:
    res = runner.invoke(app, ["list", "--json"])
    data = json.loads(res.stdout)
    assert "swin_t" in data["blueprints"] and "window_size" in data["components"]["mixer"]["window"]


def test_convert_timm_checkpoint(tmp_path: Path) -> None:
    import timm
    import torch

    ref = timm.create_model("pvt_v2_b0")
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    res = runner.invoke(app, ["convert", str(tmp_path / "timm.pth"), "-b", "pvt_v2_b0", "-o", str(tmp_path / "o.pt")])
    assert res.exit_code == 0, res.output
    sd = torch.load(tmp_path / "o.pt", weights_only=True)
    torch.testing.assert_close(sd["head.fc.weight"], ref.head.weight)
    res = runner.invoke(app, ["convert", str(tmp_path / "nope.pth"), "-b", "pvt_v2_b0", "-o", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "no such checkpoint" in res.output
