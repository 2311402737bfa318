"""timm-style pretrained loading for spmkit models, and ``save_pretrained`` folders.

- ``timm.create_model("spmkit_NAME", pretrained=True, pretrained_cfg_overlay=dict(file=PATH))``, a
  ``local-dir:FOLDER`` name, or a Hub id: the weights go through ``spmkit.convert`` (official, timm or
  spmkit layouts), size-dependent tables are resized to the model (``spmkit.convert.resize``), and they load
  strictly; a classifier of another class count is left out, as timm does.
- ``save_pretrained(model, FOLDER)`` writes ``config.json`` (timm's format: architecture, num_classes,
  pretrained_cfg, model_args; plus the resolved blueprint) and ``model.safetensors``, which
  ``timm.create_model("local-dir:FOLDER", pretrained=True)`` and ``spmkit.create_model("local-dir:FOLDER")``
  read back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from spmkit.convert.reader import read_checkpoint, unwrap_state_dict
from spmkit.convert.resize import resize_tables
from spmkit.convert.load import LoadReport, convert_state_dict, fit_report, mismatch_message
from spmkit.errors import CheckpointError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


def save_pretrained(model: nn.Module, folder: str | os.PathLike) -> Path:
    """Write ``config.json`` + ``model.safetensors`` for an spmkit classification model; returns the folder."""
    from safetensors.torch import save_file

    bp = getattr(model, "blueprint", None)
    if bp is None:
        raise CheckpointError("save_pretrained needs an spmkit model (built from a blueprint).")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {k: v for k, v in dict(model.pretrained_cfg).items() if k != "architecture"}
    doc = {
        "architecture": model.pretrained_cfg["architecture"],
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "pretrained_cfg": cfg,
        "model_args": {"num_classes": model.num_classes},
        "spmkit_blueprint": bp.model_dump(mode="json", exclude_unset=True),
    }
    (folder / CONFIG).write_text(json.dumps(doc, indent=2) + "\n")
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(folder / WEIGHTS))
    return folder


def blueprint_of_folder(folder: str | os.PathLike) -> Any:
    """The blueprint a ``save_pretrained`` folder was written from (or its timm architecture's builtin)."""
    from spmkit.blueprint import load_blueprint

    path = Path(folder) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG} (not a save_pretrained folder)")
    doc = json.loads(path.read_text())
    if isinstance(doc.get("spmkit_blueprint"), dict):
        return load_blueprint(doc["spmkit_blueprint"])
    arch = str(doc.get("architecture", ""))
    if not arch.startswith("spmkit_"):
        raise CheckpointError(f"{path}: architecture {arch!r} is not an spmkit model")
    return load_blueprint(arch.removeprefix("spmkit_"))


def load_converted(model: nn.Module, state_dict: Mapping[str, torch.Tensor], where: str) -> LoadReport:
    """Convert and load strictly, except a classifier of another class count (or none, for feature
    extractors): left out, as timm does."""
    layout, sd = convert_state_dict(state_dict, where=where)
    sd, resized = resize_tables(model, sd, where)
    own = model.state_dict()
    if any(k.startswith("head.fc.") and (k not in own or own[k].shape != v.shape) for k, v in sd.items()):
        sd = {k: v for k, v in sd.items() if not k.startswith("head.fc.")}
        own = {k: v for k, v in own.items() if not k.startswith("head.fc.")}
    report = fit_report(sd, own)
    report.layout, report.resized = layout, resized
    if report.missing or report.unexpected or report.skipped_shape:
        raise CheckpointError(mismatch_message(report, where))
    model.load_state_dict(sd, strict=False)
    return report


def load_timm_pretrained(model: nn.Module, variant: str, pretrained_cfg: Any = None,
                         overlay: Mapping[str, Any] | None = None) -> None:
    """What timm's ``load_pretrained`` does for its own models, with spmkit's converters as the filter."""
    from timm.models._builder import load_pretrained, resolve_pretrained_cfg

    cfg = resolve_pretrained_cfg(variant, pretrained_cfg or dict(model.pretrained_cfg), dict(overlay or {}))
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    num_classes = getattr(model, "num_classes", 0)
    src = cfg.get("file")
    if src or cfg.get("state_dict") is not None:
        sd = cfg["state_dict"] if not src else read_checkpoint(src)
        load_converted(model, unwrap_state_dict(sd) if not src else sd, str(src or "state_dict"))
    elif cfg.get("hf_hub_id") or cfg.get("url"):
        def _filter(state_dict: dict[str, torch.Tensor], _model: nn.Module | None = None) -> dict[str, torch.Tensor]:
            converted = convert_state_dict(unwrap_state_dict(state_dict), where=variant)[1]
            return resize_tables(model, converted, variant)[0]

        load_pretrained(model, cfg, num_classes=num_classes, in_chans=getattr(model, "in_chans", 3),
                        filter_fn=_filter, strict=True)
    else:
        raise CheckpointError(
            f"{variant}: spmkit hosts no pretrained weights; give them with pretrained_cfg_overlay=dict(file=PATH) "
            f"(official, timm or spmkit weights) or a 'local-dir:FOLDER' model name.")
