"""One writer per folder: an exclusive, non-blocking ``flock`` on a lock file (run folders and sweeps).

The lock belongs to the open file, so the OS drops it when the last process holding that file ends,
however it ends: a crash never leaves a stale lock. A child process given :attr:`FileLock.fd`
(``pass_fds``) keeps the lock after its parent is gone. The holder writes its pid into the file, so a
refused writer can say who holds it. Where ``flock`` is not available (a file system that refuses it,
a platform without ``fcntl``) the lock is not taken and writing goes ahead: no lock rather than no run.
"""

from __future__ import annotations

import os
from pathlib import Path


class LockBusy(Exception):
    """Another process holds the lock; ``holder`` is the pid it wrote (``"unknown"`` when none)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by pid {holder}")


class FileLock:
    """``with FileLock(path):`` or ``acquire()`` / ``release()``; the lock file is created when missing."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self) -> "FileLock":
        """Take the lock (``LockBusy`` when another process has it). ``OSError`` if the file cannot be opened."""
        if self.fd is not None:
            return self
        fd = _open_locked(self.path)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:  # the pid is a courtesy to the next writer's message
            pass
        self.fd = fd
        return self

    def release(self) -> None:
        """Close this process's handle; the lock ends when no process (a child given ``fd`` too) holds the file."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def held_elsewhere(self) -> str | None:
        """The holder's pid (``"unknown"`` when it wrote none) if another process holds the lock, else ``None``
        (also when there is no lock file). Writes nothing; holds the lock for a moment only when it is free."""
        if not self.path.exists():
            return None
        try:
            os.close(_open_locked(self.path))
        except LockBusy as busy:
            return busy.holder
        return None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open_locked(path: Path) -> int:
    """A descriptor of ``path`` (created when missing) holding ``flock(LOCK_EX)``, not inherited by children
    unless passed; ``LockBusy`` when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise LockBusy(path, holder) from None
    except (ImportError, OSError):  # no flock here: go ahead unlocked
        pass
    os.set_inheritable(fd, False)
    return fd


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"
