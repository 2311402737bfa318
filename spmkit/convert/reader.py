"""Reading state dicts from checkpoint files safely (``weights_only=True``, never arbitrary pickles).

Handles what the releases and trainers write around the weights: ``{"model": ...}``, ``{"state_dict": ...}``,
EMA copies (``model_ema``, ``state_dict_ema``, spmkit's ``ema``), DataParallel's ``module.`` prefix,
``.safetensors`` files, and timm ``train.py`` checkpoints (which pickle the run's ``argparse.Namespace``:
that one class is allowed, nothing else).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from typing import Any, Iterator

import torch

from spmkit.errors import CheckpointError

_PLAIN_KEYS = ("state_dict", "model", "module", "net", "params")
_EMA_KEYS = ("state_dict_ema", "model_ema", "ema")


@contextlib.contextmanager
def _allow_namespace() -> Iterator[None]:
    """Let ``weights_only`` loading accept ``argparse.Namespace`` (timm train.py stores its args)."""
    ser = torch.serialization
    if hasattr(ser, "safe_globals"):  # torch >= 2.5: scoped
        with ser.safe_globals([argparse.Namespace]):
            yield
    elif hasattr(ser, "add_safe_globals"):  # torch 2.4: process-wide, still only this class
        ser.add_safe_globals([argparse.Namespace])
        yield
    else:  # older torch: weights_only refuses the Namespace, reported below
        yield


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj: Any, ema: bool = False, where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The weights inside a loaded checkpoint object. ``ema=True`` takes the EMA copy (an error if there is
    none); otherwise the plain weights, or the EMA copy when it is the only one. An spmkit checkpoint's
    checksum is verified first (``CheckpointError`` when its content was damaged)."""
    from spmkit.io.checkpoint import verify_checksum

    verify_checksum(obj, where)
    if ema and _is_state_dict(obj):
        raise CheckpointError(f"{where} has no EMA weights (it is a bare state_dict).")
    if not _is_state_dict(obj) and isinstance(obj, dict):
        plain = next((obj[k] for k in _PLAIN_KEYS if _is_state_dict(obj.get(k))), None)
        avg = next((obj[k] for k in _EMA_KEYS if _is_state_dict(obj.get(k))), None)
        if ema and avg is None:
            raise CheckpointError(f"{where} has no EMA weights (looked for {', '.join(_EMA_KEYS)}).")
        chosen = avg if ema or plain is None else plain
        if chosen is None:
            top = ", ".join(sorted(map(str, obj)))
            raise CheckpointError(f"{where} holds no state_dict (a mapping of names to tensors); top-level keys: "
                                  f"{top or '(none)'}")
        obj = chosen
    if not _is_state_dict(obj):
        raise CheckpointError(f"{where} does not contain a state_dict (a mapping of names to tensors)")
    if all(k.startswith("module.") for k in obj):
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return dict(obj)


def read_checkpoint(path: str | os.PathLike, ema: bool = False) -> dict[str, torch.Tensor]:
    """A state_dict from a ``.pt``/``.pth``/``.bin``/``.safetensors`` file or a folder holding
    ``model.safetensors`` / ``pytorch_model.bin`` (a ``save_pretrained`` folder), unwrapped as above.
    Raises ``CheckpointError`` naming the path when it cannot be read."""
    path = os.fspath(path)
    if os.path.isdir(path):
        found = [os.path.join(path, n) for n in ("model.safetensors", "pytorch_model.bin") if
                 os.path.isfile(os.path.join(path, n))]
        if not found:
            raise CheckpointError(f"{path}: folder has neither model.safetensors nor pytorch_model.bin")
        path = found[0]
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(path)
        else:
            with _allow_namespace():
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, pickle with code, truncated download...
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:  # a training config or other object pickled next to the weights
            raise CheckpointError(
                f"{path}: holds a pickled {found.group(1)} besides the weights, which weights-only loading refuses; "
                f"from a source you trust, save just its state_dict with torch.save(...) and convert that") from None
        raise CheckpointError(f"{path}: cannot be loaded as a weights-only checkpoint ({type(err).__name__}: "
                              f"{first})") from None
    return unwrap_state_dict(obj, ema=ema, where=path)


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``read_checkpoint`` without EMA selection (kept for existing callers)."""
    return read_checkpoint(path)
