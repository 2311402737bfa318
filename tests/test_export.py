"""``spmkit export`` and the exporters: every tiny blueprint through ONNX (TorchScript exporter; the dynamo
exporter on window attention, and on every tiny blueprint: 3-8 s each on 2 cores) and
``torch.export``, each file re-run against eager PyTorch at another batch size."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.export import ExportError, export_model

from conftest import BLUEPRINTS, tiny_blueprint_files

pytest.importorskip("onnxruntime", reason="the onnx extra (onnx, onnxruntime, onnxscript) is not installed")

runner = CliRunner()
DIFF_LINE = re.compile(r"max abs difference vs eager PyTorch: (\S+) \(")
#: blueprints with LIT's deformable token merging: torchvision::deform_conv2d has no TorchScript-ONNX symbolic
DEFORM = {"tiny_lit", "tiny_pvt_ablations"}


@pytest.mark.parametrize("path", tiny_blueprint_files(), ids=lambda p: p.stem)
def test_torchscript_onnx_export_matches_eager_at_another_batch(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    if path.stem in DEFORM:
        with pytest.raises(ExportError, match=r"no translation of deform_conv2d, which the dtm merging layer uses"):
            export_model(str(path), out, fmt="onnx", dynamo=False, dynamic_batch=True)
        return
    r = export_model(str(path), out, fmt="onnx", dynamo=False, dynamic_batch=True)
    assert r.checked_with == "onnxruntime" and r.check_batch == 3 and r.input_shape == (2, 3, 64, 64)
    assert r.max_abs_diff is not None and r.max_abs_diff < 1e-4
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("path", tiny_blueprint_files(), ids=lambda p: p.stem)
def test_dynamo_onnx_export_matches_eager_at_another_batch(path: Path, tmp_path: Path) -> None:
    r = export_model(str(path), tmp_path / "m.onnx", fmt="onnx", dynamo=True, dynamic_batch=True)
    assert r.max_abs_diff is not None and r.max_abs_diff < 1e-4


def test_dynamo_onnx_window_block(tmp_path: Path) -> None:
    """A shifted-window Swin block at a dynamic batch: the dynamo exporter decomposes SDPA, whose output then
    has another memory layout than at trace time (the head merge was a view that failed)."""
    import onnxruntime as ort

    import spmkit

    model = spmkit.create_model("tiny_swin").eval()
    block = model.stages[0].blocks[1]
    assert any(block.attn.shift_size)

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = block

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(x, (16, 16))

    x2, x3 = torch.randn(2, 256, 16), torch.randn(3, 256, 16)
    program = torch.onnx.export(Block().eval(), (x2,), dynamo=True, verbose=False,
                                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    program.save(str(tmp_path / "b.onnx"))
    session = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x3.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), block(x3, (16, 16)), atol=1e-5, rtol=1e-4)


def test_cli_export_onnx_dynamic_batch_prints_difference(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    res = runner.invoke(app, ["export", "tiny_pvt_spm", "--format", "onnx", "-o", str(out), "--dynamic-batch",
                              "--no-dynamo"])
    assert res.exit_code == 0, res.output
    diff = DIFF_LINE.search(res.output)
    assert diff and float(diff.group(1)) < 1e-4, res.output
    assert "dynamic batch" in res.output and "onnxruntime, batch 3" in res.output and out.is_file()


def test_cli_export_exported_program(tmp_path: Path) -> None:
    out = tmp_path / "m.pt2"
    res = runner.invoke(app, ["export", "tiny_pvt_v2", "--format", "exported-program", "-o", str(out),
                              "--dynamic-batch"])
    assert res.exit_code == 0, res.output
    diff = DIFF_LINE.search(res.output)
    assert diff and float(diff.group(1)) < 1e-4 and "torch.export.load, batch 3" in res.output
    ep = torch.export.load(str(out))
    x = torch.randn(1, 3, 64, 64)  # batch 1 too: the dimension was exported as dynamic from 1
    assert ep.module()(x).shape == (1, 10)


def test_cli_export_unsupported_op_is_one_paragraph(tmp_path: Path) -> None:
    res = runner.invoke(app, ["export", "tiny_lit", "--format", "onnx", "-o", str(tmp_path / "m.onnx"),
                              "--no-dynamo"])
    assert res.exit_code == 1
    assert "no translation of deform_conv2d, which the dtm merging layer uses" in " ".join(res.output.split())
    assert "--format exported-program" in res.output
    assert "Traceback" not in res.output and "graph(" not in res.output
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_mismatch_fails_and_deletes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import spmkit.export.exporter as exporter

    real = exporter._run_file

    def off_by_a_little(output, fmt, x):
        out, how = real(output, fmt, x)
        return out + 1e-3, how

    monkeypatch.setattr(exporter, "_run_file", off_by_a_little)
    out = tmp_path / "m.onnx"
    res = runner.invoke(app, ["export", "tiny_pvt", "--format", "onnx", "--no-dynamo", "-o", str(out)])
    assert res.exit_code == 1, res.output
    assert "differs from eager PyTorch by up to 0.001" in res.output and "Traceback" not in res.output
    assert not out.exists()
    res = runner.invoke(app, ["export", "tiny_pvt", "--format", "onnx", "--no-dynamo", "-o", str(out), "--atol", "1e-2"])
    assert res.exit_code == 0 and out.exists(), res.output


def test_cli_export_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    src = tmp_path / "bp.yaml"
    shutil.copy(BLUEPRINTS / "tiny" / "tiny_pvt.yaml", src)
    before = src.read_bytes()
    res = runner.invoke(app, ["export", str(src), "--format", "onnx", "-o", str(src), "--no-dynamo"])
    assert res.exit_code == 2 and "refusing to overwrite" in res.output
    assert src.read_bytes() == before


def test_cli_export_run_checkpoint_uses_its_weights_and_classes(tmp_path: Path) -> None:
    import onnxruntime as ort

    import spmkit
    from spmkit.io.checkpoint import FORMAT

    model = spmkit.create_model("tiny_pvt", num_classes=5).eval()
    ckpt = tmp_path / "best.pt"
    torch.save({"format": FORMAT, "task": "classification", "recipe": {},
                "model_spec": {"blueprint": "tiny_pvt", "overrides": []},
                "data_info": {"num_classes": 5, "classes": list("abcde")}, "model": model.state_dict(), "ema": None,
                "epoch": 1, "batch_in_epoch": 0, "step": 1}, ckpt)
    out = tmp_path / "m.onnx"
    res = runner.invoke(app, ["export", str(ckpt), "--format", "onnx", "--no-dynamo", "-o", str(out)])
    assert res.exit_code == 0, res.output
    x = torch.randn(2, 3, 64, 64)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        torch.testing.assert_close(got, model(x), atol=1e-5, rtol=1e-4)  # the checkpoint's weights, 5 classes
