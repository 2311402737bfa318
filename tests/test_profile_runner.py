"""The profiler end to end on small Python modules (no subprocess) and one timm reference."""

import json
import time

import pytest
import torch
from torch import nn

from spmkit.profile import Entry, ProfileConfig, ProfileError, profile_entries, resolve_entry
from spmkit.profile.memory import cpu_peak_growth
from spmkit.profile.report import result_rows, to_csv, to_json


class SleepNet(nn.Module):
    """A conv (known FLOPs) followed by a sleep (known minimum time) and a linear head."""

    def __init__(self, sleep_s: float, width: int = 8) -> None:
        super().__init__()
        self.sleep_s = sleep_s
        self.conv = nn.Conv2d(3, width, 4, stride=4)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        time.sleep(self.sleep_s)
        return self.head(self.conv(x).mean((2, 3)))


def hand_flops(width: int, size: int) -> int:
    out = size // 4
    return 2 * out * out * width * 3 * 16 + 2 * width * 10


def run(entries, **kw):
    cfg = dict(batch_size=2, input_sizes=((32, 32),), warmup=1, repeats=3, memory=False)
    return profile_entries(entries, ProfileConfig(**(cfg | kw)))


def test_counts_times_and_ratios():
    slow = Entry("slow", lambda: SleepNet(0.02, 8), (32, 32))
    fast = Entry("fast", lambda: SleepNet(0.002, 16), (32, 32))
    res = run([slow, fast])
    assert [r.name for r in res] == ["slow", "fast"]
    assert res[0].params == sum(p.numel() for p in SleepNet(0, 8).parameters())
    assert res[0].flops == hand_flops(8, 32) and res[0].macs == hand_flops(8, 32) // 2
    assert res[1].flops == hand_flops(16, 32)
    for r, sleep in zip(res, (0.02, 0.002)):
        assert r.latency_ms >= sleep * 1e3 and r.batch_latency_ms >= sleep * 1e3
        assert r.throughput <= 2 / sleep  # batch 2, each forward sleeps at least `sleep`
        assert r.train_step_ms >= sleep * 1e3 and r.train_throughput <= 2 / sleep
        assert r.latency_p90_ms >= r.latency_ms
    rows = result_rows(res)
    assert rows[0]["latency_ms_ratio"] == 1.0
    assert rows[1]["macs_ratio"] == pytest.approx(hand_flops(16, 32) / hand_flops(8, 32))
    data = json.loads(to_json(res))
    assert {"name", "params", "macs", "latency_ms", "throughput", "peak_memory_bytes"} <= set(data[0])
    csv = to_csv(res).splitlines()
    assert csv[0].startswith("name,entry,device,input_size") and csv[1].startswith("slow,,cpu,32x32,2,")


def test_several_input_sizes_and_breakdown():
    res = run([Entry("net", lambda: SleepNet(0.0), (32, 32))], input_sizes=((32, 32), (64, 64)), breakdown=True,
              train=False)
    assert [r.input_size for r in res] == [(32, 32), (64, 64)]
    assert [r.flops for r in res] == [hand_flops(8, 32), hand_flops(8, 64)]
    assert res[0].train_step_ms is None
    rows = {b.module: b for b in res[1].breakdown}
    assert rows["conv"].flops == 2 * 16 * 16 * 8 * 48 and rows["conv"].params == 8 * 48 + 8
    assert rows["head"].kind == "head" and rows["head"].flops == 2 * 8 * 10


def test_in_process_memory_sees_activations():
    class Big(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):  # a 64 MiB float32 activation, touched, freed before returning
            y = torch.ones(16 * 2**20) * self.w
            return y.sum().reshape(1, 1) + x.mean()

    res = run([Entry("big", Big, (8, 8))], memory=True, train=False)
    assert res[0].peak_memory_bytes >= 60 * 2**20
    assert cpu_peak_growth(lambda: torch.ones(8 * 2**20).sum()).growth_bytes >= 30 * 2**20


def test_bad_requests_are_clear_errors():
    e = Entry("net", lambda: SleepNet(0.0), (32, 32))
    with pytest.raises(ProfileError, match="batch-size"):
        run([e], batch_size=0)
    with pytest.raises(ProfileError, match="bf16 or fp16"):
        run([e], amp="fp8")
    with pytest.raises(ProfileError, match="Did you mean timm:resnet18"):
        resolve_entry("timm:resnet_18")
    if not torch.cuda.is_available():
        with pytest.raises(ProfileError, match="no CUDA GPU is visible"):
            run([e], device="cuda")


def test_timm_reference_entry():
    entry = resolve_entry("timm:test_vit")
    assert entry.spec == "timm:test_vit" and entry.request()["spec"] == "timm:test_vit"
    res = run([entry], batch_size=2, input_sizes=((64, 64),), repeats=2, train=False)
    assert res[0].params == sum(p.numel() for p in entry.build().parameters())
    assert res[0].macs > 0


def test_compile_failure_is_a_clear_error(monkeypatch):
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("InductorError: no working C++ compiler\nlong details")

    monkeypatch.setattr(torch, "compile", lambda model: Broken())
    with pytest.raises(ProfileError, match="torch.compile failed .*no working C\\+\\+ compiler.*without --compile"):
        run([Entry("net", lambda: SleepNet(0.0), (32, 32))], compile=True)
