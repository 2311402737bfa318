"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

Everything stored is a tensor or a primitive container (dict / list / tuple / str / int / float / None),
so loading never unpickles code. A file that cannot be read raises ``CheckpointError`` naming the path.
Each checkpoint stores a SHA-256 of its content (every tensor's bytes, dtype and shape, and every other
value, in order), checked on load: a bit flipped on disk is an error, not silently different weights
(torch's zip reader does not verify its CRCs). Checkpoints written before the checksum load unchecked.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spmkit.errors import CheckpointError

FORMAT = "spmkit-checkpoint"
FORMAT_VERSION = 1
CHECKSUM_KEY = "sha256"
#: what every run checkpoint holds (the trainer, ``spmkit eval`` and ``predict`` read these)
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "task": str, "model_spec": dict, "recipe": dict, "model": dict, "data_info": (dict, type(None)),
    "epoch": int, "batch_in_epoch": int, "step": int,
}


def _digest(obj: Any, h: "hashlib._Hash") -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k, v in obj.items():
            _digest(k, h)
            _digest(v, h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)}".encode())
        for v in obj:
            _digest(v, h)
    else:
        h.update(f"P{type(obj).__name__}:{obj!r};".encode())


def checksum(state: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's content without its checksum entry."""
    h = hashlib.sha256()
    _digest({k: v for k, v in state.items() if k != CHECKSUM_KEY}, h)
    return h.hexdigest()


def verify_checksum(state: Any, where: str | Path) -> None:
    """Raise ``CheckpointError`` if ``state`` is an spmkit checkpoint whose stored checksum does not match its
    content. Anything else (no marker, no checksum: foreign files, checkpoints older than the checksum)
    passes. Every reader of spmkit checkpoints calls this: :func:`load_checkpoint` (resume, eval
    --checkpoint, predict) and ``spmkit.convert.reader.unwrap_state_dict`` (--init, eval --weights,
    convert, ``create_model(checkpoint_path=)``, timm's pretrained loading)."""
    if not isinstance(state, dict) or state.get("format") != FORMAT or CHECKSUM_KEY not in state:
        return
    if state[CHECKSUM_KEY] != checksum(state):
        raise CheckpointError(f"checkpoint {where} is corrupt: its content does not match the checksum stored in "
                              f"it (a damaged disk or copy). Use another checkpoint, e.g. best.pt, or a backup.")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    from spmkit.io.atomic import save_atomic

    path = Path(path)
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    full[CHECKSUM_KEY] = checksum(full)
    save_atomic(full, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an spmkit checkpoint (CPU tensors); ``CheckpointError`` when missing, unreadable or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated files, pickles with code, ... are all the user's file
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "error:" in ln.lower()), lines[0] if lines else "")
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded with weights_only=True ({type(e).__name__}: {why}). "
            f"It may be truncated, or not a checkpoint written by spmkit."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an spmkit checkpoint (no '{FORMAT}' marker); "
                              f"use --init to start from plain or timm weights.")
    verify_checksum(state, path)
    state.pop(CHECKSUM_KEY, None)
    wrong = [k for k, kind in REQUIRED.items() if not isinstance(state.get(k), kind) or isinstance(state.get(k), bool)]
    spec = state.get("model_spec")
    if isinstance(spec, dict) and not (isinstance(spec.get("blueprint"), str) and isinstance(spec.get("overrides"), list)):
        wrong.append("model_spec")
    if wrong:
        raise CheckpointError(f"checkpoint {path} is incomplete: {', '.join(wrong)} missing or of the wrong type. "
                              f"It was not written by spmkit train, or was edited.")
    return state


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states as tensors / primitives."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
