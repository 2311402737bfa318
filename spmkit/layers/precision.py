"""Float32 islands inside autocast, for ops that have no low-precision kernel.

``torchvision.ops.deform_conv2d`` has no bfloat16 kernel on CPU or CUDA and no float16 one on CPU, and
autocast does not cast it (torchvision's own autocast wrapper exists only on some builds and devices).
``float32_call`` runs such an op with autocast switched off and its floating-point inputs in float32:

* under autocast the result stays float32, as for the ops on autocast's float32 list; the next op
  autocasts it again;
* outside autocast, with bfloat16/float16 inputs (a model cast with ``.to(torch.bfloat16)``), the result
  is cast back to the first input's dtype so the model stays in its dtype;
* with float32 (or float64) inputs outside autocast the op runs untouched.
"""

from __future__ import annotations

from typing import Callable

import torch

LOW_PRECISION = (torch.float16, torch.bfloat16)


def _probe_device_arg() -> bool:
    """Whether ``torch.is_autocast_enabled`` takes a device type (newer torch); older ones have per-device
    functions (``is_autocast_cpu_enabled``)."""
    try:
        torch.is_autocast_enabled("cpu")
        return True
    except TypeError:
        return False


_DEVICE_ARG = _probe_device_arg()


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` here; ``False`` for devices autocast does not cover (meta)."""
    if device_type == "meta":
        return False
    if _DEVICE_ARG:
        return torch.is_autocast_enabled(device_type)
    if device_type == "cpu":
        return torch.is_autocast_cpu_enabled()
    return device_type == "cuda" and torch.is_autocast_enabled()


def float32_call(fn: Callable[..., torch.Tensor], *args, **kwargs) -> torch.Tensor:
    """``fn(*args, **kwargs)`` with tensor arguments in float32 and autocast off (see the module docstring).

    The first positional argument must be a tensor: its device decides which autocast applies.
    """
    first = args[0]
    active = autocast_enabled(first.device.type)
    low = any(isinstance(a, torch.Tensor) and a.dtype in LOW_PRECISION for a in args)
    if not active and not low:
        return fn(*args, **kwargs)
    cast = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    with torch.autocast(first.device.type, enabled=False):
        out = fn(*cast, **kwargs)
    return out if active else out.to(first.dtype)
