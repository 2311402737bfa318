"""What ``spmkit build`` shows: per-stage shapes, components, parameters and MACs of a blueprint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from spmkit.blueprint import Blueprint
from spmkit.errors import BlueprintError, FieldIssue, shorten
from spmkit.profile.flops import count_flops


def _params(m: nn.Module | None) -> int:
    return sum(p.numel() for p in m.parameters()) if m is not None else 0


def _mixer_names(bp: Blueprint, i: int) -> str:
    value = bp.stage_value(i, "mixer")
    if value is None:
        return "mlp_only"
    items = value if isinstance(value, list) else [value]
    return " / ".join(
        s.type + ("(shift)" if s.params.get("shift") else "") for s in items
    )


@dataclass
class StageRow:
    index: int
    resolution: tuple[int, int]
    in_dim: int
    dim: int
    depth: int
    heads: int | None
    mixer: str
    merging: str
    merging_params: int
    merging_macs: int
    params: int
    macs: int


@dataclass
class BuildSummary:
    name: str
    source: str | None
    input_size: tuple[int, int]
    params: int
    macs: int
    stem_params: int
    stem_macs: int
    head_params: int
    stages: list[StageRow] = field(default_factory=list)
    feature_info: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(bp: Blueprint, input_size: tuple[int, int] | None = None) -> BuildSummary:
    """Build on the ``meta`` device (no memory) and count parameters and MACs per stage at ``input_size``."""
    from spmkit.builder import build_model

    model = build_model(bp, device="meta").eval()
    size = input_size or bp.image_size
    try:
        report = count_flops(model, (1, bp.in_chans, *size), device="meta")
        x = torch.zeros(1, bp.in_chans, *size, device="meta")
        with torch.no_grad():
            feats = model.forward_intermediates(x, intermediates_only=True)
    except (RuntimeError, ValueError, IndexError) as err:  # shapes only: the input is too small for the model
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BlueprintError(bp.source or bp.name, [FieldIssue(
            "img_size", f"the model cannot run on a {size[0]}x{size[1]} input: {shorten(first, 300, quote=False)}")]
        ) from None
    rows = []
    for i, stage in enumerate(model.stages):
        ds = stage.downsample
        rows.append(StageRow(
            index=i,
            resolution=tuple(feats[i].shape[-2:]),
            in_dim=bp.stages[i - 1].dim if i else bp.stages[0].dim,
            dim=bp.stages[i].dim,
            depth=bp.stages[i].depth,
            heads=bp.stage_value(i, "heads"),
            mixer=_mixer_names(bp, i),
            merging=(bp.stem.type if i == 0 else (bp.stage_value(i, "merging").type if ds is not None else "-")),
            merging_params=_params(ds) if i else _params(model.stem),
            merging_macs=report.module_macs(f"stages.{i}.downsample") if i else report.module_macs("stem"),
            params=_params(stage),
            macs=report.module_macs(f"stages.{i}"),
        ))
    return BuildSummary(
        name=bp.name,
        source=bp.source,
        input_size=tuple(size),
        params=_params(model),
        macs=report.macs,
        stem_params=_params(model.stem),
        stem_macs=report.module_macs("stem"),
        head_params=_params(model.head) + _params(model.norm),
        stages=rows,
        feature_info=list(model.feature_info),
    )
