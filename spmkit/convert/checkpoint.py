"""Reading state dicts from files safely (``weights_only=True``)."""

from __future__ import annotations

import os
from typing import Any

import torch

from spmkit.errors import CheckpointError


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict from a ``.pt``/``.pth`` file (unwrapping ``state_dict``/``model``/``state_dict_ema`` keys)
    or a ``.safetensors`` file. Raises ``CheckpointError`` naming the path when it cannot be read."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(path)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, pickle with code, truncated download...
        raise CheckpointError(f"{path}: cannot be loaded as a weights-only checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not contain a state_dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}
