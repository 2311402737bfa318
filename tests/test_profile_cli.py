"""``spmkit profile`` through the Typer app: the JSON interface, errors, and the arguments it passes on."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import spmkit.profile as profile_lib
from spmkit import create_model, load_blueprint
from spmkit.cli.app import app
from spmkit.profile.flops import count_flops
from spmkit.profile.summary import summarize

ROOT = Path(__file__).resolve().parent.parent

runner = CliRunner()
FAST = ["--repeats", "2", "--warmup", "0", "--batch-size", "2"]


def invoke(*args):
    return runner.invoke(app, ["profile", *args])


def test_json_interface_blueprints_and_timm_with_subprocess_memory():
    path = str(ROOT / "blueprints" / "tiny" / "tiny_pvt.yaml")
    res = invoke("tiny_swin", path, "timm:test_vit", "--device", "cpu", "--json", "--input-size", "64", *FAST)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [d["name"] for d in data] == ["tiny_swin", "tiny_pvt", "timm:test_vit"]
    for d, name in zip(data, ("tiny_swin", "tiny_pvt", None)):
        assert d["latency_ms"] > 0 and d["throughput"] > 0 and d["train_step_ms"] > 0
        assert d["peak_memory_bytes"] > 0 and d["train_peak_memory_bytes"] > 0
        assert "VmHWM" in d["memory_method"] and "fresh process, glibc mmap threshold" in d["memory_method"]
        assert d["input_size"] == [64, 64] and d["batch_size"] == 2
        if name:  # parameters and MACs equal what `spmkit build` reports for the blueprint
            summary = summarize(load_blueprint(name))
            assert (d["params"], d["macs"]) == (summary.params, summary.macs)
    assert data[1]["latency_ms_ratio"] == pytest.approx(data[1]["latency_ms"] / data[0]["latency_ms"])


def test_set_and_variants_become_entries(monkeypatch):
    seen = {}
    monkeypatch.setattr(profile_lib, "profile_entries",
                        lambda entries, config, progress=None: seen.update(e=entries) or [])
    res = invoke("tiny_swin", "timm:test_vit", "--set", "mlp_ratio=1", "--variant", "stages.2.depth=2;stages.3.depth=2",
                 "--json")
    assert res.exit_code == 0, res.output
    names = [e.name for e in seen["e"]]
    assert names == ["tiny_swin[mlp_ratio=1]", "tiny_swin[mlp_ratio=1,stages.2.depth=2,stages.3.depth=2]",
                     "timm:test_vit"]
    small, big = (sum(p.numel() for p in e.build().parameters()) for e in seen["e"][:2])
    assert big > small


def test_breakdown_rows_match_module_counts():
    res = invoke("tiny_swin", "--json", "--breakdown", "--no-memory", "--no-train", *FAST)
    assert res.exit_code == 0, res.output
    rows = {b["module"]: b for b in json.loads(res.stdout)[0]["breakdown"]}
    report = count_flops(create_model("tiny_swin"), (1, 3, 64, 64))
    assert rows["stages.1.merging"]["flops"] == report.by_module["stages.1.downsample"]
    assert rows["stages.0.mixer"]["count"] == 2 and rows["stages.2.mixer"]["count"] == 1
    assert rows["stages.0.mixer"]["flops"] == sum(report.by_module[f"stages.0.blocks.{i}.attn"] for i in (0, 1))
    assert rows["stages.2"]["flops"] == report.by_module["stages.2"] and rows["head"]["kind"] == "head"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_clear_error():
    res = invoke("timm:test_vit", "--device", "cuda", "--json")
    assert res.exit_code == 2
    assert "no CUDA GPU is visible" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("args, message", [
    (["timm:test_vitt"], "Did you mean timm:test_vit"),
    (["timm:test_vit", "--input-size", "22a"], "input size '22a'"),
    (["timm:test_vit", "--amp", "fp8"], "bf16 or fp16"),
    (["timm:vit_tiny_patch16_224", "--input-size", "64"], "does not run at input 64x64"),
])
def test_bad_input_exits_2_without_traceback(args, message):
    res = invoke(*args, "--no-memory", *FAST)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_options_reach_the_library(monkeypatch):
    seen = {}

    def fake(entries, config, progress=None):
        seen["entries"], seen["config"] = entries, config
        return []

    monkeypatch.setattr(profile_lib, "profile_entries", fake)
    res = invoke("timm:test_vit", "--input-size", "64x48,32", "--input-size", "96", "--amp", "bf16",
                 "--channels-last", "--threads", "1", "--batch-size", "4", "--no-train", "--breakdown", "--json")
    assert res.exit_code == 0, res.output
    cfg = seen["config"]
    assert cfg.input_sizes == ((64, 48), (32, 32), (96, 96)) and cfg.amp == "bf16" and cfg.channels_last
    assert cfg.threads == 1 and cfg.batch_size == 4 and not cfg.train and cfg.breakdown
    assert [e.name for e in seen["entries"]] == ["timm:test_vit"]
    assert json.loads(res.stdout) == []


def test_table_and_csv(tmp_path):
    out = tmp_path / "r.csv"
    res = invoke("timm:test_resnet", "--input-size", "32", "--no-memory", "--no-train", "--csv", str(out), *FAST)
    assert res.exit_code == 0, res.output
    assert "timm:test_resnet" in res.stdout and "lat ms" in res.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("timm:test_resnet,timm:test_resnet,cpu,32x32,2,")


def test_sweep_and_trace_from_the_command_line(tmp_path):
    png, trace = tmp_path / "sweep.png", tmp_path / "trace"
    res = invoke("timm:test_resnet", "--sweep-resolution", "32,48", "--plot", str(png), "--trace", str(trace),
                 "--no-memory", "--no-train", "--json", *FAST)
    assert res.exit_code == 0, res.output
    assert [d["input_size"] for d in json.loads(res.stdout)] == [[32, 32], [48, 48]]
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert (trace / "timm_test_resnet-inference.chrome.json").exists()
    assert list((trace / "tensorboard").glob("timm_test_resnet-inference.*.pt.trace.json"))
