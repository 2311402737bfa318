"""Checkpoints kept besides ``last.pt`` and ``best.pt``: ``epoch_NNNN.pt`` every N epochs, the newest K kept.

Recipe fields ``save_every_epochs: N`` (write one every N epochs) and ``keep_last: K`` (delete all but the
K newest; given alone it writes one every epoch). ``last.pt`` and ``best.pt`` are never deleted.
"""

from __future__ import annotations

import re
from pathlib import Path

_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


def epoch_checkpoint(run: Path, epoch: int) -> Path:
    """The path of the checkpoint kept for ``epoch`` (1-based)."""
    return Path(run) / f"epoch_{epoch:04d}.pt"


def epoch_checkpoints(run: Path) -> list[Path]:
    """``epoch_NNNN.pt`` files of a run folder, oldest first."""
    found = [(int(m.group(1)), p) for p in Path(run).glob("epoch_*.pt") if (m := _EPOCH_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_epoch_checkpoints(run: Path, keep_last: int | None) -> list[Path]:
    """Delete all but the ``keep_last`` newest epoch checkpoints; returns the deleted paths."""
    if not keep_last:
        return []
    old = epoch_checkpoints(run)[:-keep_last]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def checkpoint_listing(run: Path, best_note: str | None = None) -> list[str]:
    """Lines naming each checkpoint of the run folder with its size and full path (end-of-run report)."""
    run = Path(run)
    files = [p for p in (run / "last.pt", run / "best.pt") if p.is_file()] + epoch_checkpoints(run)
    if not files:
        return []
    lines = ["checkpoints:"]
    for p in files:
        note = f"  ({best_note})" if p.name == "best.pt" and best_note else ""
        lines.append(f"  {p.name:<14} {_size(p.stat().st_size):>10}  {p.resolve()}{note}")
    lines.append(f"run folder: {run.resolve()}  (train.log, metrics.jsonl, steps.jsonl)")
    return lines
