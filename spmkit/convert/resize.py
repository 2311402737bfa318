"""Size-dependent tables follow the model: before a converted checkpoint is compared with a model, every
module that declares ``resize_state_dict(prefix, state_dict)`` (position embeddings, relative-position bias
tables; see ``spmkit.layers.table_resize``) resizes its own tables to the model's size.

Used by every load: ``load_weights`` (``create_model(checkpoint_path=)``, ``spmkit convert``, ``--init``,
``eval --weights``) and timm's pretrained loading of ``spmkit_*`` models.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from spmkit.errors import CheckpointError
from spmkit.layers.table_resize import TableResizeError


def resize_tables(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                  where: str = "checkpoint") -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(state_dict with every size-dependent table resized to model's shapes, keys resized)``; the input is
    not changed. A table that cannot be resized raises ``CheckpointError`` naming it."""
    out = dict(state_dict)
    resized: list[str] = []
    for name, module in model.named_modules():
        hook = getattr(type(module), "resize_state_dict", None)
        if hook is None:
            continue
        prefix = f"{name}." if name else ""
        if not any(k.startswith(prefix) for k in out):
            continue
        try:
            resized += module.resize_state_dict(prefix, out)
        except TableResizeError as e:
            raise CheckpointError(f"{where}: a size-dependent table cannot be resized to the model: {e}. "
                                  f"Nothing was loaded.") from e
    return out, resized
