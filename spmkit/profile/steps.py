"""The calls that get timed: an inference forward and a training step, with AMP / channels-last / compile.

A training step is forward, cross-entropy on random labels (or the mean of a non-logit output), backward,
``AdamW.step`` and ``zero_grad(set_to_none=True)``, as a training loop runs it. Gradient scaling is used
for fp16 on CUDA. The data loader is not part of the step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from spmkit.profile.errors import ProfileError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class StepOptions:
    """How the model runs: device, autocast dtype (``bf16``/``fp16``/``None``), memory format, compile."""

    device: str = "cpu"
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False


def check_device(device: str) -> torch.device:
    """The torch device for ``device`` (checked by ``spmkit.io.devices``, the one device check), with a
    bare ``cuda`` made the current GPU's index; ``ProfileError`` when this machine does not have it."""
    from spmkit.io.devices import DeviceError, resolve_device

    try:
        dev = resolve_device(device)
    except DeviceError as err:
        raise ProfileError(str(err)) from None
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def autocast(opts: StepOptions) -> contextlib.AbstractContextManager:
    if opts.amp is None:
        return contextlib.nullcontext()
    if opts.amp not in AMP_DTYPES:
        raise ProfileError(f"--amp {opts.amp!r}: choose bf16 or fp16.")
    return torch.autocast(device_type=torch.device(opts.device).type, dtype=AMP_DTYPES[opts.amp])


def prepare_model(model: nn.Module, opts: StepOptions) -> nn.Module:
    """Move to the device (and channels-last); compiled when asked. Returns the module to call."""
    model = model.to(opts.device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if opts.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    return model


def make_input(batch: int, size: tuple[int, int], opts: StepOptions, in_chans: int = 3) -> torch.Tensor:
    x = torch.randn(batch, in_chans, *size, device=opts.device)
    return x.contiguous(memory_format=torch.channels_last) if opts.channels_last else x


def inference_call(model: nn.Module, x: torch.Tensor, opts: StepOptions) -> Callable[[], object]:
    """One forward under ``inference_mode`` (the model should be in eval mode)."""

    def call() -> object:
        with torch.inference_mode(), autocast(opts):
            return model(x)

    return call


def _loss(out: object) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):
        out = next(iter(out.values()))
    if not isinstance(out, torch.Tensor):
        raise ProfileError(f"cannot train on a model output of type {type(out).__name__}: expected a tensor.")
    if out.dim() == 2:
        target = torch.randint(0, out.shape[1], (out.shape[0],), device=out.device)
        return F.cross_entropy(out.float(), target)
    return out.float().mean()


def train_call(model: nn.Module, x: torch.Tensor, opts: StepOptions,
               params: list[nn.Parameter] | None = None) -> Callable[[], object]:
    """One training step (forward, loss, backward, AdamW step, zero_grad); the model should be in train mode."""
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    scaler = torch.amp.GradScaler("cuda") if (opts.amp == "fp16" and torch.device(opts.device).type == "cuda") else None

    def call() -> object:
        with autocast(opts):
            loss = _loss(model(x))
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return call
