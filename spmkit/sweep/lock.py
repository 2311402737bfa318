"""One sweep per output folder: the exclusive lock of ``spmkit.io.file_lock`` on ``SWEEP/.lock``, held for the
whole sweep.

The lock belongs to the open file, and the training processes a sweep starts inherit that file, so a sweep
killed while a variant trains keeps its folder locked until that process ends too: a second sweep can
never train the same variant alongside it. (``flock`` on network file systems depends on the server.)
"""

from __future__ import annotations

from pathlib import Path

from spmkit.io.file_lock import FileLock, LockBusy
from spmkit.sweep.errors import SweepError


class SweepLock(FileLock):
    """``with SweepLock(folder):`` or ``acquire()`` / ``release()``; ``fd`` is passed to child processes."""

    def __init__(self, folder: str | Path) -> None:
        super().__init__(Path(folder) / ".lock")

    def acquire(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            super().acquire()
        except LockBusy as busy:
            raise SweepError(
                f"{self.path.parent} is being written by another sweep (started by pid {busy.holder}), or by a "
                f"training process a killed sweep left running. Wait for it to finish, or choose another --output."
            ) from None
        return self

    def __enter__(self) -> "SweepLock":
        return self.acquire()
