"""Start a model from existing weights: an spmkit checkpoint, a plain state_dict, timm's or an official
release's weights (converted by ``spmkit.convert``).

Loading is non-strict on purpose: a source without SPM layers leaves them freshly initialised, and a
classifier of another class count is skipped. What was not loaded is returned (and logged by the engine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights in ``path``: spmkit run checkpoints (``model`` key), timm / official files
    (``state_dict`` / ``model`` / bare), ``.safetensors``; always ``weights_only=True``."""
    from spmkit.convert.reader import read_checkpoint

    return read_checkpoint(path)


def load_init_weights(model: nn.Module, source: str | Path | dict[str, Any],
                      from_: str | None = None) -> dict[str, list[str]]:
    """Load ``source`` into ``model`` non-strictly, converting its layout (detected from the keys, or
    ``from_``); returns the missing, unexpected and shape-skipped keys, the size-dependent tables resized
    to the model (position embeddings, relative-position tables: never skipped) and the layout read."""
    from spmkit.convert.load import load_weights

    r = load_weights(model, source, from_=from_, strict=False)
    skipped = r.skipped_shape
    return {"missing": [k for k in r.missing if k not in skipped], "unexpected": r.unexpected,
            "skipped": skipped, "resized": r.resized,
            "layout": [r.layout]}
