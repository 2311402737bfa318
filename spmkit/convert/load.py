"""Detect a checkpoint's layout, convert it, and load it into a model: strictly by default (every tensor of
the file used, every tensor of the model set, shapes equal), or leniently for starting a fine-tune."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from spmkit.convert.reader import read_checkpoint
from spmkit.convert.resize import resize_tables
from spmkit.errors import CheckpointError
from spmkit.registry import CONVERTERS

def _converters() -> None:
    import spmkit.convert.layouts  # noqa: F401  (each layout registers itself in CONVERTERS)


def converter_names() -> list[str]:
    _converters()
    return CONVERTERS.names()


def detect_layout(state_dict: Mapping[str, Any], where: str = "checkpoint") -> str:
    """The registered converter whose layout these keys are in; an error if none or several match."""
    _converters()
    keys = set(state_dict)
    hits = [name for name, conv in CONVERTERS.items() if not conv.fallback and conv().detect(keys)]
    hits = hits or [name for name, conv in CONVERTERS.items() if conv.fallback and conv().detect(keys)]
    if len(hits) == 1:
        return hits[0]
    sample = ", ".join(sorted(keys)[:6])
    if not hits:
        raise CheckpointError(
            f"{where}: cannot tell which release this state_dict comes from (first keys: {sample}). Known "
            f"layouts: {', '.join(CONVERTERS.names())}; pass --from NAME (from_=NAME) if it is one of them.")
    raise CheckpointError(f"{where}: the keys fit several layouts ({', '.join(hits)}); pass --from NAME.")


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], from_: str | None = None,
                       where: str = "checkpoint") -> tuple[str, dict[str, torch.Tensor]]:
    """``(layout name, state_dict in spmkit's names)``; ``from_`` skips detection."""
    _converters()
    name = from_ or detect_layout(state_dict, where)
    conv = CONVERTERS.get(name)()
    return name, conv.convert(dict(state_dict))


@dataclass
class LoadReport:
    """What a load did: the layout it read, and what did not fit (empty lists after a strict load)."""

    layout: str = ""
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped_shape: list[str] = field(default_factory=list)
    #: size-dependent tables resized to the model's size (position embeddings, relative-position tables)
    resized: list[str] = field(default_factory=list)
    #: file shape and model shape of each ``skipped_shape`` key
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)


def _some(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def fit_report(converted: Mapping[str, torch.Tensor], model_sd: Mapping[str, torch.Tensor]) -> LoadReport:
    """Compare converted tensors with a model's state_dict (names and shapes)."""
    r = LoadReport()
    for k, v in converted.items():
        if k not in model_sd:
            r.unexpected.append(k)
        elif tuple(model_sd[k].shape) != tuple(v.shape):
            r.skipped_shape.append(k)
            r.shapes[k] = (tuple(v.shape), tuple(model_sd[k].shape))
        else:
            r.loaded.append(k)
    r.missing = [k for k in model_sd if k not in converted]
    return r


def mismatch_message(r: LoadReport, where: str) -> str:
    parts = []
    if r.missing:
        parts.append(f"{len(r.missing)} tensors of the model would stay unset ({_some(r.missing)})")
    if r.unexpected:
        parts.append(f"{len(r.unexpected)} of its tensors have no place in the model ({_some(r.unexpected)})")
    if r.skipped_shape:
        shapes = [f"{k} {list(r.shapes[k][0])} vs {list(r.shapes[k][1])}" for k in r.skipped_shape]
        parts.append(f"{len(r.skipped_shape)} shapes differ, file vs model ({_some(shapes, 5)})")
    return (f"{where} (read as layout '{r.layout}') does not fit the model: {'; '.join(parts)}. Nothing was "
            f"loaded. Use the blueprint of the same size (and --set head.num_classes=N for another head), or "
            f"--from NAME if the layout was detected wrongly.")


def load_weights(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], *,
                 from_: str | None = None, strict: bool = True, ema: bool = False,
                 optional: tuple[str, ...] = ()) -> LoadReport:
    """Load an official, timm or spmkit checkpoint (file, folder or state_dict) into ``model``.

    Size-dependent tables (position embeddings, relative-position bias tables) are first resized to the
    model's size by the modules that own them (``spmkit.convert.resize``).
    ``strict``: any tensor of the file unused, tensor of the model unset or shape that differs raises
    ``CheckpointError`` listing them, and the model is left untouched. Otherwise tensors that fit are
    loaded and the rest reported (e.g. SPM layers absent from a baseline's weights keep their init).
    ``optional``: key prefixes of the model that may stay unset even when strict (a backbone release has no
    classifier: ``("head.",)``).
    """
    where = os.fspath(source) if not isinstance(source, Mapping) else "state_dict"
    sd = read_checkpoint(source, ema=ema) if not isinstance(source, Mapping) else dict(source)
    if from_ is None and not strict:
        try:
            detect_layout(sd, where)
        except CheckpointError:  # a starting point in names of its own: load what matches, report the rest
            from_ = "spmkit"
    layout, converted = convert_state_dict(sd, from_, where)
    converted, resized = resize_tables(model, converted, where)
    own = {k: v for k, v in model.state_dict().items() if not (optional and k.startswith(optional))}
    report = fit_report(converted, own)
    report.layout, report.resized = layout, resized
    if strict and (report.missing or report.unexpected or report.skipped_shape):
        raise CheckpointError(mismatch_message(report, where))
    model.load_state_dict({k: converted[k] for k in report.loaded}, strict=False)
    return report
