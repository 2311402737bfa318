"""``benchmarks/gpu_acceptance.py --device cpu --smoke`` runs every step of the GPU acceptance run on the CPU,
so the script cannot rot while no GPU is around."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import spmkit.mixers  # noqa: F401  (registers the mixers)
from spmkit.registry import MIXERS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_smoke_run_writes_every_step(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_acceptance.py"), "--device", "cpu",
                           "--smoke", "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_acceptance.json").read_text())
    assert data["ok"] and not data["failures"] and data["smoke"] and data["device"] == "cpu"

    # profile: every pair in fp32, bf16 and bf16 + channels-last, with ratios that are the rows' quotients
    modes = data["profile"]["modes"]
    assert set(modes) == {"fp32", "bf16", "bf16_channels_last"}
    assert modes["bf16"]["swin_t"]["amp"] == "bf16" and modes["bf16_channels_last"]["swin_t"]["channels_last"]
    for row in modes["fp32"].values():
        assert row["latency_ms"] > 0 and row["train_step_ms"] > 0 and row["peak_memory_bytes"] is not None
    pairs = {(r["mode"], r["ours"], r["reference"]) for r in data["ratios"]}
    assert len(pairs) == 3 * 4
    first = next(r for r in data["ratios"] if r["mode"] == "fp32" and r["ours"] == "spmkit tiny_swin")
    ours, ref = modes["fp32"]["swin_t"], modes["fp32"]["swin_ref"]
    assert first["latency"] == pytest.approx(ours["latency_ms"] / ref["latency_ms"])
    assert first["train_step"] == pytest.approx(ours["train_step_ms"] / ref["train_step_ms"])
    skipped = {s["step"] for s in data["skipped"]}
    assert {"profile bf16_compiled", "profile allocator peaks", "sdpa fused-kernel requirement"} <= skipped

    # sdpa: every registered mixer was seen; each one that calls SDPA reports the kernel it ran
    sdpa = data["sdpa"]
    assert not sdpa["uncovered_mixers"]
    assert set(sdpa["mixers_using_sdpa"]) | set(sdpa["mixers_without_sdpa"]) == set(MIXERS.names())
    assert {"window", "global", "sra"} <= set(sdpa["mixers_using_sdpa"])
    for check in sdpa["checks"]:
        if check["uses_sdpa"]:
            assert check["default_kernels"] and check["fused_only"]

    # collective, train and eval
    assert data["collective"] == {"backend": "gloo", "world_size": 1, "ok": True}
    assert data["train"]["returncode"] == 0 and data["train"]["metrics"]["epoch"] == 1
    assert data["eval"]["metrics"]["top1"] == pytest.approx(data["train"]["metrics"]["top1"])
    md = (tmp_path / "gpu_acceptance.md").read_text()
    assert "| fp32 | spmkit tiny_swin | timm swin_tiny_patch4_window7_224 |" in md and "Skipped:" in md


@pytest.mark.parametrize("hide_dali", [False, True])
def test_loader_section_measures_each_loader_against_the_ceiling(tmp_path: Path, monkeypatch, hide_dali: bool) -> None:
    """Issue 20: img/s of the folder, shard and DALI loaders per worker count, beside the model-only ceiling;
    DALI skipped with the install command when it is not there."""
    pytest.importorskip("webdataset")
    sys.path.insert(0, str(ROOT))
    from benchmarks.gpu_acceptance import main

    if hide_dali:
        monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    has_dali = not hide_dali and importlib.util.find_spec("nvidia") is not None \
        and importlib.util.find_spec("nvidia.dali") is not None
    rc = main(["--device", "cpu", "--smoke", "--skip", "sdpa,collective,train,profile", "--out", str(tmp_path),
               "--loader-workers", "0,1"])
    data = json.loads((tmp_path / "gpu_acceptance.json").read_text())
    assert rc == 0 and data["ok"], data["failures"]
    section = data["loader"]
    loaders = {"folder", "shards"} | ({"dali"} if has_dali else set())
    assert {(r["loader"], r["workers"]) for r in section["rows"]} == {(x, w) for x in loaders for w in (0, 1)}
    assert section["model_only_img_per_s"] > 0 and section["train_images"] == (1 + 2) * 4
    for r in section["rows"]:
        assert r["img_per_s"] > 0
        assert r["of_ceiling"] == pytest.approx(r["img_per_s"] / section["model_only_img_per_s"], abs=2e-3)
    skipped = {s["step"]: s["reason"] for s in data["skipped"]}
    assert ("loader dali" in skipped) == (not has_dali)
    if not has_dali:
        assert 'pip install "spmkit[dali]"' in skipped["loader dali"]
    md = (tmp_path / "gpu_acceptance.md").read_text()
    assert "| folder | 1 |" in md and ("| dali | 0 |" in md) == has_dali
