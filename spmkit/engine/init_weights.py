"""Start a model from existing weights: an spmkit checkpoint, a plain state_dict, or timm weights.

Loading is non-strict on purpose: a source without SPM layers leaves them freshly initialised, and a
classifier of another class count is skipped. What was not loaded is returned (and logged by the engine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn



def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights in ``path``: spmkit run checkpoints (``model`` key), timm / torchvision files
    (``state_dict`` / ``model`` / bare), ``.safetensors``; always ``weights_only=True``."""
    from spmkit.convert.checkpoint import load_state_dict_file

    return load_state_dict_file(path)


def load_init_weights(model: nn.Module, source: str | Path | dict[str, Any]) -> dict[str, list[str]]:
    """Load ``source`` into ``model`` non-strictly; returns missing, unexpected and shape-skipped keys.

    timm swin / pvt_v2 weights are renamed by the foundation's converter
    (``spmkit.convert.timm_state_dict_to_spmkit``) when that matches more of the model's names than the
    file's own names do.
    """
    from spmkit.convert.timm import timm_state_dict_to_spmkit
    from spmkit.errors import CheckpointError

    sd = dict(source) if isinstance(source, dict) else read_state_dict(source)
    own = model.state_dict()
    try:
        converted = timm_state_dict_to_spmkit(sd)
    except (CheckpointError, KeyError, ValueError):
        converted = None
    if converted is not None and len(set(converted) & set(own)) > len(set(sd) & set(own)):
        sd = converted
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    filtered = {k: v for k, v in sd.items() if k not in skipped}
    result = model.load_state_dict(filtered, strict=False)
    missing = [k for k in result.missing_keys if k not in skipped]
    return {"missing": missing, "unexpected": list(result.unexpected_keys), "skipped": skipped}
