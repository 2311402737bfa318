"""Every builtin blueprint family under CPU autocast (bf16, and fp16 where this torch's CPU autocast has it):
forward close to float32 and a training step with finite gradients; float32 islands for ops without
low-precision kernels (``spmkit.layers.precision``); ``spmkit profile --amp bf16``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision.ops import deform_conv2d
from typer.testing import CliRunner

import spmkit
from spmkit.cli.app import app
from spmkit.layers.precision import autocast_enabled, float32_call
from spmkit.merging.dtm import DeformableTokenMerging

from conftest import tiny_blueprint_files

TINY = tiny_blueprint_files()


def _cpu_autocast_supports(dtype: torch.dtype) -> bool:
    """Capability probe: does CPU autocast run a linear layer in ``dtype``?"""
    try:
        with torch.autocast("cpu", dtype=dtype):
            return torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2)).dtype == dtype
    except (RuntimeError, ValueError):
        return False


DTYPES = [pytest.param(torch.bfloat16, id="bf16"),
          pytest.param(torch.float16, id="fp16", marks=pytest.mark.skipif(
              not _cpu_autocast_supports(torch.float16), reason="this torch's CPU autocast has no float16"))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", TINY, ids=[p.stem for p in TINY])
def test_tiny_blueprint_forward_and_train_step_under_cpu_autocast(path: Path, dtype: torch.dtype) -> None:
    model = spmkit.create_model(path).eval()
    x = torch.randn(2, 3, *model.img_size)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=dtype):
            out = model(x)
    assert out.dtype == dtype  # the head's linear ran in low precision: autocast really was on
    assert torch.isfinite(out).all()
    # bf16 keeps 8 bits of mantissa: a few per cent of the logits' range through a dozen layers
    tol = 0.05 if dtype == torch.bfloat16 else 0.01
    assert (out.float() - ref).abs().max() <= tol * ref.abs().max() + 1e-3

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.autocast("cpu", dtype=dtype):
        logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor([1, 2]))
    loss.backward()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not bad, f"missing or non-finite gradients: {bad[:5]}"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    opt.step()
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(moved) > len(before) // 2 and torch.isfinite(loss)


def test_autocast_enabled_follows_the_context_per_device() -> None:
    assert not autocast_enabled("cpu") and not autocast_enabled("meta")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_enabled("cpu") and not autocast_enabled("meta")
    assert not autocast_enabled("cpu")


def test_float32_call_runs_deform_conv_in_float32_and_keeps_the_model_dtype() -> None:
    x = torch.randn(1, 4, 6, 6)
    offset = 0.3 * torch.randn(1, 8, 3, 3)
    w, b = torch.randn(5, 4, 2, 2), torch.randn(5)
    ref = deform_conv2d(x, offset, w, b, stride=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = float32_call(deform_conv2d, x.bfloat16(), offset.bfloat16(), w, b, stride=2)
    assert out.dtype == torch.float32  # like autocast's float32-list ops
    torch.testing.assert_close(out, ref, atol=0.1, rtol=0.05)
    low = float32_call(deform_conv2d, x.bfloat16(), offset.bfloat16(), w.bfloat16(), b.bfloat16(), stride=2)
    assert low.dtype == torch.bfloat16  # outside autocast a bf16 model stays bf16
    assert float32_call(deform_conv2d, x, offset, w, b, stride=2).equal(ref)


def test_dtm_under_autocast_and_as_a_bf16_module() -> None:
    layer = DeformableTokenMerging(8, 16).eval()
    with torch.no_grad():
        layer.dconv.conv_offset.weight.normal_(0, 0.2)  # non-zero offsets: real bilinear sampling
    x = torch.randn(2, 9, 9, 8)
    with torch.no_grad():
        ref = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x)
        low = layer.to(torch.bfloat16)(x.bfloat16())
    assert out.shape == ref.shape == (2, 5, 5, 16) and low.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)
    torch.testing.assert_close(low.float(), ref, atol=0.1, rtol=0.1)


def test_profile_cli_runs_a_dtm_blueprint_with_bf16_autocast() -> None:
    res = CliRunner().invoke(app, ["profile", "tiny_lit", "--device", "cpu", "--amp", "bf16", "--json",
                                   "--repeats", "2", "--warmup", "0", "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["amp"] == "bf16" and row["train_step_ms"] > 0 and row["train_peak_memory_bytes"] > 0
