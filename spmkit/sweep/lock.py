"""One sweep per output folder: an exclusive ``fcntl.flock`` on ``SWEEP/.lock``, held for the whole sweep.

The lock belongs to the open file, and the training processes a sweep starts inherit that file, so a sweep
killed while a variant trains keeps its folder locked until that process ends too: a second sweep can
never train the same variant alongside it. (``flock`` on network file systems depends on the server.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from spmkit.sweep.errors import SweepError


class SweepLock:
    """``with SweepLock(folder):`` or ``acquire()`` / ``release()``; ``fd`` is passed to child processes."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / ".lock"
        self.fd: int | None = None

    def acquire(self) -> "SweepLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SweepError(
                f"{self.path.parent} is being written by another sweep (started by pid {holder}), or by a training "
                f"process a killed sweep left running. Wait for it to finish, or choose another --output."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        os.set_inheritable(fd, False)
        self.fd = fd
        return self

    def release(self) -> None:
        """Close this process's handle; the lock ends when no process (a training child too) holds the file."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "SweepLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
