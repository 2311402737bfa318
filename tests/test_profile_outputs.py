"""Trace files and the resolution-sweep plot."""

import json

import torch
from torch import nn

from spmkit.profile import Entry, ProfileConfig
from spmkit.profile.resolution import plot_sweep, sweep_resolution
from spmkit.profile.trace import record_trace


def test_trace_writes_tensorboard_and_chrome_json(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    x = torch.randn(1, 3, 16, 16)
    paths = record_trace(lambda: model(x), tmp_path, "my model")
    events = json.loads(paths["chrome"].read_text())["traceEvents"]
    assert any("conv" in str(e.get("name", "")).lower() for e in events)
    assert list(paths["tensorboard"].glob("*.pt.trace.json"))
    assert "aten::conv" in paths["ops"].read_text() or "aten::convolution" in paths["ops"].read_text()


def test_sweep_measures_each_size_and_plots(tmp_path):
    entries = [Entry("a", lambda: nn.Conv2d(3, 4, 4, stride=4), (32, 32)),
               Entry("b", lambda: nn.Conv2d(3, 8, 4, stride=4), (32, 32))]
    res = sweep_resolution(entries, [16, 32], ProfileConfig(batch_size=1, warmup=0, repeats=2, memory=False))
    assert [(r.name, r.input_size) for r in res] == [("a", (16, 16)), ("b", (16, 16)), ("a", (32, 32)),
                                                     ("b", (32, 32))]
    assert res[2].flops == 4 * res[0].flops  # a conv's FLOPs grow with the pixel count
    png = plot_sweep(res, tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_doc_section_is_replaced_in_place(tmp_path):
    from benchmarks.docsection import write_section

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Someone else's section\n\nkeep me\n")
    write_section("zoo_cpu", "Zoo", "first", doc)
    write_section("other", "Other", "x", doc)
    write_section("zoo_cpu", "Zoo", "second", doc)
    text = doc.read_text()
    assert "keep me" in text and "second" in text and "first" not in text
    assert text.count("## Zoo") == 1 and text.index("## Zoo") < text.index("## Other")
