"""The run folder: resolved blueprint and recipe, versions, metrics (JSONL, CSV, TensorBoard), checkpoints.

Layout::

    RUN/.spmkit-run  (marker)  .spmkit-lock  blueprint.yaml  recipe.yaml  run.json (task, data, command, versions)
    RUN/metrics.jsonl   metrics.csv   steps.jsonl   tb/events.*
    RUN/last.pt  best.pt

Only rank 0 writes. ``metrics.jsonl`` has one object per finished epoch; ``steps.jsonl`` one per logged
optimizer step (step, epoch, lr, loss).

Ownership: a folder is used only when it is new, empty, or marked as a run folder by ``.spmkit-run``
(older run folders are recognised by their ``run.json``); anything else holds the user's own files and is
refused before anything is written. One process writes a run folder at a time: :meth:`RunDir.acquire`
takes an exclusive ``flock`` on ``.spmkit-lock`` (``spmkit.io.file_lock``, as sweeps do) that the OS releases
when the process ends, however it ends, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import platform
import sys
from pathlib import Path
from typing import Any

import yaml

from spmkit.io.atomic import TMP_PREFIX, write_error, write_text_atomic
from spmkit.errors import DataError, SpmkitError
from spmkit.io.file_lock import FileLock, LockBusy

MARKER = ".spmkit-run"
LOG = "train.log"
LOCK = ".spmkit-lock"


class RunDirError(SpmkitError):
    """A run folder that is not ours to write, or that another process is writing."""


def versions() -> dict[str, str]:
    import timm
    import torch

    import spmkit

    return {"spmkit": str(spmkit.__version__), "torch": str(torch.__version__), "timm": str(timm.__version__),
            "python": platform.python_version()}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL metrics file. A torn last line (a kill during a write) is dropped; a damaged line
    anywhere else is a ``DataError`` naming the file and line."""
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}.") from None
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    rows: list[dict[str, Any]] = []
    for k, (lineno, ln) in enumerate(numbered):
        try:
            row = json.loads(ln)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            if k == len(numbered) - 1:
                break  # torn by a kill during the append
            raise DataError(f"{path} line {lineno} is not a JSON object: {ln[:80]!r}. The file is damaged; "
                            f"remove that line to use it.")
        rows.append(row)
    return rows


def _is_legacy_run(path: Path) -> bool:
    """A run folder written before the marker existed: its run.json names the spmkit version."""
    try:
        run = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(run, dict) and isinstance(run.get("versions"), dict) and "spmkit" in run["versions"]


def check_owned(path: Path) -> None:
    """``RunDirError`` unless ``path`` is missing, an empty folder or an spmkit run folder."""
    if not path.exists():
        return
    if not path.is_dir():
        raise RunDirError(f"--output {path} is a file, not a folder; choose a new or empty folder.")
    try:
        entries = sorted(p.name for p in path.iterdir())
    except OSError as e:
        raise RunDirError(f"--output {path} cannot be read ({e.strerror or e}).") from None
    if not entries or MARKER in entries or _is_legacy_run(path):
        return
    shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
    raise RunDirError(f"--output {path} already holds files that are not an spmkit run ({len(entries)} entries: "
                      f"{shown}); nothing was written. Choose a new or empty folder for the run.")


def _busy(path: Path, holder: str) -> RunDirError:
    who = f"pid {holder}" if holder != "unknown" else "it"
    return RunDirError(f"{path} is being written by another spmkit process ({who} holds {path / LOCK}). Wait for "
                       f"that run to finish or stop it, or choose another --output.")


def probe_lock(path: Path) -> None:
    """``RunDirError`` when another process writes ``path`` (a launcher's check before it starts processes)."""
    check_owned(path)
    holder = FileLock(path / LOCK).held_elsewhere()
    if holder is not None:
        raise _busy(path, holder)


class RunDir:
    """Writes the files of one run folder (a no-op object on ranks other than 0).

    Nothing is created until :meth:`acquire`; :meth:`release` after a failure removes what ``acquire``
    added when the run wrote nothing else, so a failed command leaves no empty run folder behind.
    """

    def __init__(self, path: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._tb = None
        self._tensorboard = tensorboard
        self._lock = None
        self._created: list[Path] = []
        self._files: dict[str, Any] = {}  # the open JSONL files (see _append)

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def acquire(self) -> None:
        """Check ownership, create the folder, take the writer lock, mark it and remove orphaned temp files."""
        if not self.enabled or self._lock is not None:
            return
        check_owned(self.path)
        try:
            missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
            self.path.mkdir(parents=True, exist_ok=True)
            self._created = missing[::-1]
            had_lock = (self.path / LOCK).exists()
            try:
                self._lock = FileLock(self.path / LOCK).acquire()
            except LockBusy as busy:
                self._created = []  # the folder and its lock file are the other writer's now
                raise _busy(self.path, busy.holder) from None
            if not had_lock:
                self._created.append(self.path / LOCK)
            if not (self.path / MARKER).exists():
                (self.path / MARKER).write_text("spmkit run folder: written by `spmkit train`\n")
                self._created.append(self.path / MARKER)
            if not (self.path / LOG).exists():  # the trainer's log, written from here on
                self._created.append(self.path / LOG)
        except OSError as e:
            self.release(failed=True)
            raise write_error(self.path / MARKER, e, kept=False) from None
        for orphan in self.path.glob(TMP_PREFIX + "*"):  # a kill during an atomic write
            try:
                orphan.unlink()
            except OSError:
                pass

    def release(self, failed: bool = False) -> None:
        """Drop the lock; after a failure also undo :meth:`acquire` if nothing else was written."""
        try:
            self.close()
        except SpmkitError:
            if not failed:  # after a failure, its own message matters more than the event file's
                raise
        if failed and self._created:
            root = self.path
            left = {p.name for p in root.iterdir()} if root.is_dir() else set()
            if left <= {MARKER, LOCK, LOG}:  # the log holds only the error the console showed
                for p in reversed(self._created):
                    try:
                        p.rmdir() if p.is_dir() else p.unlink(missing_ok=True)
                    except OSError:
                        break
        self._created = []
        if self._lock is not None:
            self._lock.release()  # closing the file releases the flock
            self._lock = None

    def _text(self, name: str, text: str) -> None:
        write_text_atomic(self.path / name, text)

    def write_config(self, *, task: str, blueprint: dict[str, Any] | None, recipe: dict[str, Any],
                     info: dict[str, Any], data: str, model: str, world_size: int) -> None:
        if not self.enabled:
            return
        if blueprint is not None:
            self._text("blueprint.yaml", yaml.safe_dump(blueprint, sort_keys=False))
        self._text("recipe.yaml", yaml.safe_dump(recipe, sort_keys=False))
        run = {"task": task, "model": model, "data": data, "world_size": world_size, "command": sys.argv,
               "versions": versions(), "data_info": {k: v for k, v in info.items() if k != "classes"}}
        self._text("run.json", json.dumps(run, indent=2))
        self._created = []  # the folder is a run now

    def truncate_after(self, epoch: int, step: int) -> None:
        """Drop rows written after the checkpoint being resumed (a killed run may have logged more; a
        fresh start drops all), and a torn last line; each file is rewritten atomically."""
        if not self.enabled:
            return
        self._close_files()  # the files are replaced below
        for name, key, limit in (("metrics.jsonl", "epoch", epoch), ("steps.jsonl", "step", step)):
            p = self.path / name
            if p.exists():
                keep = [r for r in read_jsonl(p) if isinstance(r.get(key), (int, float)) and r[key] <= limit]
                self._text(name, "".join(json.dumps(r) + "\n" for r in keep))
        if (self.path / "metrics.jsonl").exists():
            self._rewrite_csv()

    def _append(self, name: str, row: dict[str, Any]) -> None:
        """One line to ``name``; the file stays open (line-buffered: each row reaches the OS at once, so a
        killed process loses none), instead of an open and close per optimizer step."""
        p = self.path / name
        try:
            f = self._files.get(name)
            if f is None:
                f = self._files[name] = open(p, "a", buffering=1)
            f.write(json.dumps(row) + "\n")
        except OSError as e:
            self._close_files()
            raise write_error(p, e, kept=False) from None

    def _close_files(self) -> None:
        files, self._files = self._files, {}
        for f in files.values():
            try:
                f.close()
            except OSError:
                pass

    def log_step(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._append("steps.jsonl", row)
        with self._tb_errors():
            tb = self._writer()
            if tb is not None:
                for k in ("lr", "loss"):
                    if k in row:
                        tb.add_scalar(f"step/{k}", row[k], row["step"])

    def log_epoch(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._append("metrics.jsonl", row)
        self._rewrite_csv()
        with self._tb_errors():
            tb = self._writer()
            if tb is not None:
                for k, v in row.items():
                    if k != "epoch" and isinstance(v, (int, float)):
                        tb.add_scalar(f"epoch/{k}", v, row["epoch"])
                tb.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / "metrics.jsonl")

    def _rewrite_csv(self) -> None:
        rows = self.read_metrics()
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
        self._text("metrics.csv", buf.getvalue())

    def _writer(self):
        if not self._tensorboard:
            return None
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: JSONL/CSV only
                self._tensorboard = False
                return None
            self._tb = SummaryWriter(str(self.path / "tb"))
        return self._tb

    @contextlib.contextmanager
    def _tb_errors(self):
        """TensorBoard event files on a full disk: the same one paragraph as the other files."""
        try:
            yield
        except OSError as e:
            raise write_error(self.path / "tb", e, kept=False) from None

    def close(self) -> None:
        self._close_files()
        if self._tb is not None:
            tb, self._tb = self._tb, None
            with self._tb_errors():
                tb.close()

