"""Atomic writes: a temporary file in the same folder, fsync, then rename (never a half-written file)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
