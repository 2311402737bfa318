"""Start a model from existing weights: an spmkit checkpoint, a plain state_dict, or timm weights.

Loading is non-strict on purpose: a source without SPM layers leaves them freshly initialised, and a
classifier of another class count is skipped. What was not loaded is returned (and logged by the engine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from spmkit.errors import CheckpointError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights in ``path``: spmkit checkpoints (``model`` / ``ema`` keys) or timm-style files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is the user's file
        raise CheckpointError(f"cannot load weights from {path}: {type(e).__name__}: {e}") from None
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_ema", "ema"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors.")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_init_weights(model: nn.Module, source: str | Path | dict[str, Any]) -> dict[str, list[str]]:
    """Load ``source`` into ``model`` non-strictly; returns missing, unexpected and shape-skipped keys.

    When the names do not match the model's (timm swin / pvt_v2 weights into an spmkit model), the
    foundation's converter ``spmkit.convert.load_timm_weights`` is used instead.
    """
    sd = source if isinstance(source, dict) else read_state_dict(source)
    own = model.state_dict()
    overlap = len(set(sd) & set(own))
    if overlap < max(1, len(own) // 2) and hasattr(model, "blueprint"):
        try:
            from spmkit.convert import load_timm_weights
        except ImportError:  # foundation without a converter
            load_timm_weights = None
        if load_timm_weights is not None:
            result = load_timm_weights(model, sd)
            missing = list(getattr(result, "missing_keys", []) or [])
            unexpected = list(getattr(result, "unexpected_keys", []) or [])
            return {"missing": missing, "unexpected": unexpected, "skipped": []}
    skipped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    filtered = {k: v for k, v in sd.items() if k not in skipped}
    result = model.load_state_dict(filtered, strict=False)
    missing = [k for k in result.missing_keys if k not in skipped]
    return {"missing": missing, "unexpected": list(result.unexpected_keys), "skipped": skipped}
