"""``--devices`` / ``--gpus`` / ``--nproc`` checked against the machine before anything is built or launched."""

from __future__ import annotations

import os

from spmkit.errors import SpmkitError, shorten


class DeviceError(SpmkitError):
    """A device that does not exist here, or more processes than the machine has devices (or CPUs) for."""


def check_devices(devices: str, processes: int = 1, option: str = "--devices") -> str:
    """``"cpu"`` or ``"cuda"`` for ``devices`` (``auto``, ``cpu`` or ``cuda``) running ``processes``
    processes on this node, one GPU each; ``DeviceError`` when this machine cannot."""
    import torch

    name = devices.strip().lower()
    if name not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"{option} {shorten(devices, 60, quote=False)}: choose auto, cpu or cuda.")
    if processes < 1:
        raise DeviceError(f"the number of processes must be at least 1, got {processes}.")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
            raise DeviceError(f"{option} asks for CUDA, but no CUDA GPU is visible to PyTorch here (torch "
                              f"{torch.__version__}, CUDA_VISIBLE_DEVICES={visible}); use --devices cpu.")
        if processes > count:
            raise DeviceError(f"{processes} GPU processes were asked for, but this machine has {count} visible "
                              f"GPU{'s' if count != 1 else ''}; use --gpus {count} or fewer.")
    else:  # oversubscribing a little is fine for gloo tests; thousands of processes are not
        cpus = os.cpu_count() or 1
        limit = max(2 * cpus, 4)
        if processes > limit:
            raise DeviceError(f"{processes} CPU processes were asked for, but this machine has {cpus} CPU "
                              f"core{'s' if cpus != 1 else ''}; use --nproc {limit} or fewer.")
    return name
