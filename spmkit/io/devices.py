"""``--devices`` / ``--gpus`` / ``--nproc`` checked against the machine before anything is built or launched."""

from __future__ import annotations

import os

from spmkit.errors import SpmkitError, shorten


class DeviceError(SpmkitError):
    """A device that does not exist here, or more processes than the machine has devices (or CPUs) for."""


def check_devices(devices: str, processes: int = 1, option: str = "--device") -> str:
    """``"cpu"`` or ``"cuda"`` for ``devices`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) running
    ``processes`` processes on this node, one GPU each; ``DeviceError`` when this machine cannot."""
    import torch

    name = devices.strip().lower()
    index = None
    if name.startswith("cuda:") and name[5:].isdigit() and len(name) <= 12:
        name, index = "cuda", int(name[5:])
    if name not in ("auto", "cpu", "cuda"):
        raise DeviceError(f"{option} {shorten(devices, 60, quote=False)}: choose auto, cpu, cuda or cuda:N.")
    if processes < 1:
        raise DeviceError(f"the number of processes must be at least 1, got {processes}.")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
            raise DeviceError(f"{option} asks for CUDA, but no CUDA GPU is visible to PyTorch here (torch "
                              f"{torch.__version__}, {built}, CUDA_VISIBLE_DEVICES={visible}); use --device cpu.")
        if index is not None and index >= count:
            raise DeviceError(f"{option} {devices}: this machine has {count} visible GPU{'s' if count != 1 else ''} "
                              f"(cuda:0 to cuda:{count - 1}).")
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


def resolve_device(device: str, option: str = "--device") -> "torch.device":
    """The ``torch.device`` one process runs on: ``auto`` -> CUDA when available, else CPU; checked as
    :func:`check_devices` does."""
    import torch

    kind = check_devices(device, 1, option)
    name = device.strip().lower()
    return torch.device(name if name.startswith("cuda:") else kind)
