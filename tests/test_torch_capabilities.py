"""Behaviour that depends on what the installed torch (or GPU) can do is decided by probing the capability,
never by the version string; these tests pin each decision on both sides of the probe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import spmkit.layers.precision as precision
from spmkit.tasks.base import autocast_for, resolve_amp

ROOT = Path(__file__).resolve().parent.parent
CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def test_no_version_string_checks_in_the_package() -> None:
    pattern = re.compile(r"torch\.__version__\s*[<>=!]|version\.parse|LooseVersion|parse_version")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "spmkit").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, f"compare capabilities, not versions: {hits}"


def test_auto_amp_is_fp32_on_cpu_and_explicit_choices_pass_through() -> None:
    assert resolve_amp("auto", CPU) == "none"
    assert [resolve_amp(a, CPU) for a in ("bf16", "fp16", "none")] == ["bf16", "fp16", "none"]
    x, w = torch.ones(1, 2), torch.ones(2, 2)
    with autocast_for("auto", CPU):
        assert torch.nn.functional.linear(x, w).dtype == torch.float32
    with autocast_for("bf16", CPU):
        assert torch.nn.functional.linear(x, w).dtype == torch.bfloat16


@pytest.mark.parametrize("native,emulated,expected", [(True, True, "bf16"), (False, True, "none"),
                                                      (False, False, "none")])
def test_auto_amp_picks_bf16_only_on_gpus_with_native_bf16(monkeypatch, native, emulated, expected) -> None:
    """Newer torch: ``is_bf16_supported(including_emulation=...)``; emulated bf16 (pre-Ampere) is not chosen."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: native or (including_emulation and emulated))
    assert resolve_amp("auto", CUDA) == expected


@pytest.mark.parametrize("supported", [True, False])
def test_auto_amp_on_a_torch_without_the_emulation_argument(monkeypatch, supported) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)  # older signature: native only
    assert resolve_amp("auto", CUDA) == ("bf16" if supported else "none")


def test_autocast_probe_falls_back_to_per_device_functions(monkeypatch) -> None:
    """Older torch: ``is_autocast_enabled()`` takes no device (CUDA only), CPU has its own function."""
    cpu_flag, cuda_flag = [False], [False]

    def old_is_autocast_enabled(*args):
        if args:
            raise TypeError("is_autocast_enabled() takes 0 positional arguments")
        return cuda_flag[0]

    monkeypatch.setattr(torch, "is_autocast_enabled", old_is_autocast_enabled)
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: cpu_flag[0], raising=False)
    assert precision._probe_device_arg() is False
    monkeypatch.setattr(precision, "_DEVICE_ARG", False)
    assert not precision.autocast_enabled("cpu") and not precision.autocast_enabled("cuda")
    cpu_flag[0] = True
    assert precision.autocast_enabled("cpu") and not precision.autocast_enabled("cuda")
    cpu_flag[0], cuda_flag[0] = False, True
    assert precision.autocast_enabled("cuda") and not precision.autocast_enabled("cpu")
    assert not precision.autocast_enabled("meta")


def test_autocast_probe_on_this_torch_matches_the_real_context() -> None:
    assert precision._probe_device_arg() is precision._DEVICE_ARG
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert precision.autocast_enabled("cpu")
    assert not precision.autocast_enabled("cpu")
