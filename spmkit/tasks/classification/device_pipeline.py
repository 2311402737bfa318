"""The device-side input pipeline of classification (timm's prefetcher, done the spmkit way).

With ``prefetch`` on, the host transform stops at a uint8 CHW tensor (decode, crop, flip, RandAugment,
colour jitter; no ``ToTensor`` scaling, no ``Normalize``, no random erasing), the loader collates uint8
batches (a quarter of float32's bytes) into pinned memory, and the batch is copied non-blocking; on the
device :func:`normalize_uint8` turns it into the normalised float batch and, for training batches,
:class:`DeviceErasing` applies random erasing before mixup / CutMix (which already run on the device).

Results are equivalent to the host pipeline: the same decoded pixels give the same normalised values up to
float rounding (``(x - 255 mean) / (255 std)`` instead of ``(x / 255 - mean) / std``). The randomness
differs in one respect: random erasing draws its decisions from the main process's ``random`` and its
noise from the device's generator, not from the loader workers' generators, so a run with the device
pipeline erases other patches than the same run with ``prefetch: off`` (same probability and sizes).
"""

from __future__ import annotations

from typing import Sequence

import torch


def use_device_pipeline(prefetch: str, device: torch.device) -> bool:
    """``prefetch`` of the recipe: ``on``, ``off``, or ``auto`` (on for CUDA devices)."""
    return prefetch == "on" or (prefetch == "auto" and device.type == "cuda")


def normalize_uint8(images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                    channels_last: bool = False) -> torch.Tensor:
    """A uint8 NCHW batch (already on its device) -> float32, normalised with ``mean`` / ``std`` (0-1 scale).

    The scaled mean / std tensors are made once per device and kept (building them from Python numbers
    for each batch would be a small blocking host-to-device copy per step on a GPU)."""
    key = (tuple(mean), tuple(std), images.device)
    consts = _CONSTANTS.get(key)
    if consts is None:
        consts = _CONSTANTS[key] = (torch.tensor([255.0 * v for v in mean], device=images.device).view(1, -1, 1, 1),
                                    torch.tensor([255.0 * v for v in std], device=images.device).view(1, -1, 1, 1))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return images.to(dtype=torch.float32, memory_format=memory_format).sub_(consts[0]).div_(consts[1])


_CONSTANTS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


class DeviceErasing:
    """timm's ``RandomErasing`` on a normalised batch on its device (each image independently)."""

    def __init__(self, probability: float, mode: str, count: int, device: torch.device) -> None:
        from timm.data.random_erasing import RandomErasing

        self.erase = RandomErasing(probability, mode=mode, max_count=count, num_splits=0, device=device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.erase(images)
