"""Will a blueprint fit? Its size, counted before anything is allocated, against the memory of the device.

The count is exact for parameters and buffers: the model is first built on the ``meta`` device, which
allocates nothing and is fast because the schema bounds the number of blocks. Activation memory is an
estimate for one image at the blueprint's ``img_size``: every block keeps a few token maps of its stage's
size (input, attention output, the MLP's hidden map), which is what an inference forward holds at its peak
within a factor of about two.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch

from spmkit.errors import SpmkitError

#: share of the currently available memory a model (weights and one image's activations) may take
USABLE_FRACTION = 0.8


class ResourceError(SpmkitError):
    """A model too large for the memory of the device it would be built on."""


@dataclass(frozen=True)
class SizeEstimate:
    params: int
    param_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.param_bytes + self.activation_bytes


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**28 else f"{n / 2**20:,.1f} MiB"


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes (CUDA: free device memory; CPU: the OS's available memory);
    None when it cannot be told."""
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        except (RuntimeError, AssertionError, ValueError):
            return None
    if device.type != "cpu":
        return None
    free = _meminfo_available()
    limited = _cgroup_headroom()
    if free is None:
        return limited
    return free if limited is None else min(free, limited)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2 or v1), if it has a limit."""
    paths: list[tuple[str, str]] = []
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                hid, ctrls, rel = line.rstrip("\n").split(":", 2)
                if hid == "0" and not ctrls:
                    paths += [(f"/sys/fs/cgroup{rel}/memory.max", f"/sys/fs/cgroup{rel}/memory.current")]
                elif "memory" in ctrls.split(","):
                    paths += [(f"/sys/fs/cgroup/memory{rel}/memory.limit_in_bytes",
                               f"/sys/fs/cgroup/memory{rel}/memory.usage_in_bytes")]
    except (OSError, ValueError):
        pass
    paths += [("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
              ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")]
    for limit_path, usage_path in paths:
        limit = _read_int(limit_path)
        if limit is not None and limit < 2**60:
            usage = _read_int(usage_path) or 0
            return max(limit - usage, 0)
    return None


def estimate_model(model: Any, bp: Any, dtype: torch.dtype | None = None) -> SizeEstimate:
    """Parameters and buffers (exact, from ``model``, a ``meta`` build of ``bp``) and one image's
    activations (estimated). ``spmkit.builder.estimate(bp)`` builds the ``meta`` model and calls this."""
    params = sum(p.numel() for p in model.parameters())
    tensor_bytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    elem = torch.empty((), dtype=dtype or torch.get_default_dtype()).element_size()
    h, w = bp.image_size
    acts = bp.in_chans * h * w
    for i, info in enumerate(model.feature_info):
        tokens = math.ceil(h / info["reduction"]) * math.ceil(w / info["reduction"])
        ratio = bp.stage_value(i, "mlp_ratio") or 4.0
        acts += bp.stages[i].depth * tokens * info["num_chs"] * (3 + ratio)
    return SizeEstimate(params, tensor_bytes, int(acts * elem))


def check_estimate(bp: Any, estimate: Callable[[], SizeEstimate], device: Any = None, *, batch: int = 1,
                   input_size: tuple[int, int] | None = None) -> SizeEstimate | None:
    """Raise ``ResourceError`` (with the estimate) when ``bp`` cannot be built and run on ``device`` for
    ``batch`` images of ``input_size`` (default: one image at the blueprint's ``img_size``). ``estimate``
    is called only when the device's free memory is known (``spmkit.builder.check_fits`` passes a ``meta``
    build); this module never builds, so that the builder can use it."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "meta":
        return None
    free = available_bytes(dev)
    if free is None:
        return None
    est = estimate()
    h, w = input_size or bp.image_size
    acts = int(est.activation_bytes * batch * (h * w) / (bp.image_size[0] * bp.image_size[1]))
    total = est.param_bytes + acts
    budget = int(free * USABLE_FRACTION)
    if total > budget:
        where = "this machine's available memory" if dev.type == "cpu" else f"the free memory of {dev}"
        images = f"one {h}x{w} image" if batch == 1 else f"{batch} images of {h}x{w}"
        raise ResourceError(
            f"{bp.source or bp.name}: the model is too large to run here: {est.params:,} parameters "
            f"({_gib(est.param_bytes)} with buffers) and about {_gib(acts)} of activations for {images}, "
            f"{_gib(total)} in all, against {_gib(free)} of {where}. Reduce the batch, the input size, or "
            f"depth, dim, heads, mlp_ratio (spmkit build shows the per-stage cost without allocating it).")
    return est
