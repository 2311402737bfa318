"""The backbone part of a detection or segmentation release (mmdetection / mmsegmentation checkpoints:
``state_dict`` with ``backbone.*``, ``neck.*``, ``rpn_head.*``, ``decode_head.*`` ... keys).

``load_backbone_part`` keeps the ``backbone.`` keys (prefix removed), drops and counts the rest, and loads
them like a classification release: converted, size-dependent tables resized, strictly, except that a
backbone has no classifier (the model's ``head.*`` keep their initialisation).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Mapping

import torch
from torch import nn

from spmkit.convert.reader import read_checkpoint
from spmkit.convert.load import LoadReport, load_weights
from spmkit.errors import CheckpointError

PARTS = ("backbone",)


def split_part(state_dict: Mapping[str, torch.Tensor], part: str = "backbone",
               where: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """``(the part's tensors with the ``part.`` prefix removed, {dropped top-level name: tensor count})``."""
    if part not in PARTS:
        raise CheckpointError(f"--part {part!r}: known parts: {', '.join(PARTS)}")
    prefix = f"{part}."
    kept = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    dropped = Counter(k.split(".", 1)[0] for k in state_dict if not k.startswith(prefix))
    if not kept:
        top = ", ".join(sorted({k.split(".", 1)[0] for k in state_dict})[:8])
        raise CheckpointError(f"{where}: no '{prefix}*' keys (top-level names: {top}); --part {part} reads "
                              f"mmdetection / mmsegmentation checkpoints, whose backbone keys start with "
                              f"'{prefix}'. For a classification checkpoint leave --part out.")
    return kept, dict(dropped)


def load_backbone_part(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], *,
                       from_: str | None = None, strict: bool = True,
                       ema: bool = False) -> tuple[LoadReport, dict[str, int]]:
    """Load the ``backbone.*`` part of a detection/segmentation checkpoint into a classification-blueprint
    ``model``; returns the load report and the dropped (neck, heads) tensor counts by name."""
    where = os.fspath(source) if not isinstance(source, Mapping) else "state_dict"
    sd = read_checkpoint(source, ema=ema) if not isinstance(source, Mapping) else dict(source)
    part, dropped = split_part(sd, "backbone", where)
    report = load_weights(model, part, from_=from_, strict=strict, optional=("head.",))
    return report, dropped


__all__ = ["PARTS", "load_backbone_part", "split_part"]
