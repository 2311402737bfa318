"""``spmkit profile`` through the Typer app: the JSON interface, errors, and the arguments it passes on."""

import json

import pytest
import torch
from typer.testing import CliRunner

import spmkit.profile as profile_lib
from spmkit.cli.app import app

runner = CliRunner()
FAST = ["--repeats", "2", "--warmup", "0", "--batch-size", "2"]


def invoke(*args):
    return runner.invoke(app, ["profile", *args])


def test_json_interface_with_subprocess_memory():
    res = invoke("timm:test_vit", "timm:test_resnet", "--device", "cpu", "--json", "--input-size", "32",
                 "--no-train", *FAST)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [d["name"] for d in data] == ["timm:test_vit", "timm:test_resnet"]
    for d in data:
        assert d["params"] > 0 and d["macs"] > 0 and d["latency_ms"] > 0 and d["throughput"] > 0
        assert d["peak_memory_bytes"] > 0 and "VmHWM" in d["memory_method"]
        assert d["input_size"] == [32, 32] and d["batch_size"] == 2
    assert data[1]["latency_ms_ratio"] == pytest.approx(data[1]["latency_ms"] / data[0]["latency_ms"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_clear_error():
    res = invoke("timm:test_vit", "--device", "cuda", "--json")
    assert res.exit_code == 2
    assert "no CUDA GPU is visible" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("args, message", [
    (["timm:test_vitt"], "Did you mean timm:test_vit"),
    (["timm:test_vit", "--input-size", "22a"], "input size '22a'"),
    (["timm:test_vit", "--amp", "fp8"], "bf16 or fp16"),
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
