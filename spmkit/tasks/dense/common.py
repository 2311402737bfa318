"""Pieces the detection and segmentation tasks share: building the backbone from a ``ModelSpec``, the
backbone's normalisation constants, batches of lists, and fixed-length iteration epochs."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from spmkit.data.unreadable import LeaveOutCollate
from spmkit.errors import SpmkitError
from spmkit.tasks.base import ModelSpec


class DenseModelError(SpmkitError):
    """A backbone that cannot carry a dense head (no feature maps at strides 4-32)."""


def build_backbone(spec: ModelSpec) -> nn.Module:
    """A classification backbone without its classifier: ``timm:<name>`` or an spmkit blueprint."""
    if spec.blueprint.startswith("timm:"):
        from spmkit.timm_models import create_timm_model

        return create_timm_model(spec.blueprint, num_classes=0)
    import spmkit

    # a stored (resolved) blueprint goes through the same validation as a file, as in classification
    source = spmkit.load_blueprint(spec.resolved if spec.resolved is not None else spec.blueprint,
                                   overrides=() if spec.resolved is not None else list(spec.overrides))
    return spmkit.build_model(source)


def mean_std(backbone: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The backbone's ``pretrained_cfg`` mean / std (ImageNet's when it has none)."""
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
    return mean, std


def _empty_pair() -> tuple[list, list]:
    return [], []


def leave_out_collate(collate: Callable[[list[Any]], Any]) -> LeaveOutCollate:
    """Batches ``(images, targets, skipped)`` of lists: ``collate`` joins the readable items, ``skipped``
    counts the unreadable ones (left out); a batch with none readable is ``([], [], skipped)``."""
    return LeaveOutCollate(collate, _empty_pair)


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class RepeatDataset(torch.utils.data.Dataset):
    """``length`` items cycling over ``dataset``: epochs of a fixed number of iterations (mmseg's
    iteration-based schedules on an epoch-based engine). The engine's sampler shuffles the indices."""

    def __init__(self, dataset: torch.utils.data.Dataset, length: int) -> None:
        self.dataset, self.length = dataset, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index % len(self.dataset)]

    def __getattr__(self, name: str) -> Any:  # num_classes, class_names, ...
        if name in ("dataset", "length"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def iteration_epoch_length(iters: int, epochs: int, batch_size: int, accum_steps: int) -> int:
    """Items per epoch so that ``epochs`` epochs make ``iters`` optimizer steps on every process."""
    steps = max(1, math.ceil(iters / epochs))
    return steps * batch_size * accum_steps * world_size()
