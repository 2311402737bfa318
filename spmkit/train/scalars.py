"""A task's extra training scalars (``training_loss``'s second value), summed over an epoch on the device.

``training_loss`` may return them as 0-dim tensors (detection's loss terms, distillation's parts): they
are added up where they are, so a training step has no device -> host synchronisation for them; the sums
are read once, when the epoch closes. Python numbers are accepted too. The sums are float64, the same
arithmetic as adding Python floats.
"""

from __future__ import annotations

from typing import Mapping

import torch


def add_scalars(sums: dict[str, torch.Tensor], scalars: Mapping[str, float | torch.Tensor]) -> None:
    """Add one batch's ``scalars`` into ``sums`` (in place; tensors stay on their device)."""
    for k, v in scalars.items():
        if isinstance(v, torch.Tensor):
            value = v.detach().to(torch.float64)
        else:
            value = torch.tensor(float(v), dtype=torch.float64)
        if k not in sums:
            sums[k] = value
        elif value.device.type == "cpu":  # a host number onto the device sum: no device -> host copy
            sums[k] = sums[k] + value.to(sums[k].device)
        else:
            sums[k] = sums[k].to(value.device) + value


def scalar_means(sums: Mapping[str, torch.Tensor], names: list[str], batches: int,
                 device: torch.device) -> torch.Tensor:
    """The per-batch means of ``sums[name]`` for ``names``, one float64 tensor on ``device``."""
    return torch.stack([sums[k].to(device).reshape(()) for k in names]) / max(batches, 1)
