"""Where a command may write its output file: never over one of its inputs, never over an existing file
without ``--force``, never "into" a folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from spmkit.errors import SpmkitError, shorten


class OutputPathError(SpmkitError):
    """An output path that would overwrite an input, an existing file (without --force) or is a folder."""


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, ValueError):
        return False


def check_output_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], force: bool,
                      option: str = "--output") -> Path:
    """``out`` as a ``Path`` if the command may write it; ``OutputPathError`` naming the path as given."""
    path = Path(out)
    shown = shorten(str(out), 300, quote=False)
    for src in inputs:
        if src is not None and _same(path, Path(src)):
            raise OutputPathError(f"{option} {shown}: this is an input of the command "
                                  f"({shorten(str(src), 300, quote=False)}); refusing to overwrite it. "
                                  "Choose another output path.")
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        raise OutputPathError(f"{option} {shown}: is a folder; give a file path, e.g. {shown.rstrip('/')}/out.pt.")
    if path.exists() and not force:
        raise OutputPathError(f"{option} {shown}: the file already exists; pass --force to overwrite it.")
    return path
