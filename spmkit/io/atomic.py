"""Atomic writes: a temporary file in the same folder, fsync, rename, fsync of the folder (never a
half-written file, and the rename survives a power cut). Files get the permissions of the user's umask,
as ``open()`` would give them (``tempfile.mkstemp`` alone makes them 0600). A write that fails (a full
disk, a read-only folder) leaves the previous file in place and raises :class:`WriteError`."""

from __future__ import annotations

import errno
import os
import tempfile
from typing import Any, Callable, IO

from spmkit.errors import SpmkitError

#: prefix of the temporary files; a run folder's orphans (a kill during a write) are removed on resume
TMP_PREFIX = ".tmp-"


class WriteError(SpmkitError):
    """A file of the output could not be written (full disk, no permission); the previous one is kept."""


def umask() -> int:
    """The process's umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(os.fspath(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_error(path: str | os.PathLike, err: OSError, kept: bool = True) -> WriteError:
    """One paragraph for an ``OSError`` while writing ``path``."""
    why = "the disk is full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else (err.strerror or str(err))
    tail = " The previous version of the file is kept." if kept else ""
    return WriteError(f"cannot write {os.fspath(path)}: {why} ({errno.errorcode.get(err.errno or 0, 'OSError')})."
                      f"{tail} Free some space or choose another output folder.")


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None], suffix: str = ".tmp") -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it onto ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix, dir=folder)
    except OSError as e:
        raise write_error(path, e) from None
    try:
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        cause = e if isinstance(e, OSError) else e.__cause__ or e.__context__
        if isinstance(cause, OSError) and isinstance(e, (OSError, RuntimeError)):
            raise write_error(path, cause, kept=os.path.exists(path)) from None  # torch may wrap the OSError
        raise
    fsync_dir(folder)


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    write_atomic(path, lambda f: torch.save(obj, f), suffix=".pt")


def copy_atomic(src: str | os.PathLike, path: str | os.PathLike) -> None:
    """Replace ``path`` by a copy of the file ``src`` atomically (a byte copy: no second serialisation; a
    copy, not a hard link, so writing into one file in place never changes the other)."""
    import shutil

    with open(src, "rb") as source:
        write_atomic(path, lambda f: shutil.copyfileobj(source, f, 1 << 20), suffix=".pt")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) atomically."""
    data = text.encode("utf-8")
    write_atomic(path, lambda f: f.write(data))
