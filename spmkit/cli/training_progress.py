"""A rich progress bar for the training loop (rank 0): epoch, batches, loss, lr, images/s, ETA."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RichReporter:
    """Implements ``spmkit.engine.reporter.Reporter`` with one bar per epoch and a summary line after it."""

    def __init__(self, console: Console | None = None) -> None:
        # soft_wrap: summary lines in a log file stay whole instead of breaking at 80 columns
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.3e}  {task.fields[ips]:.0f} img/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self._task = None
        self.progress.start()

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        if self._task is not None:
            self.progress.remove_task(self._task)
        self._task = self.progress.add_task("train", total=total, completed=done, epoch=f"{epoch}/{epochs}",
                                            loss=float("nan"), lr=0.0, ips=0.0)

    def step(self, done: int, loss: float, lr: float, images_per_s: float) -> None:
        if self._task is not None:
            self.progress.update(self._task, completed=done, loss=loss, lr=lr, ips=images_per_s)

    def end_epoch(self, row: dict[str, Any]) -> None:
        keys = ("train_loss", "top1", "top5", "lr", "images_per_s")
        parts = [f"{k} {row[k]:.4g}" for k in keys if isinstance(row.get(k), (int, float))]
        self.progress.console.print(f"epoch {row['epoch']}: " + "  ".join(parts))

    def message(self, text: str) -> None:
        self.progress.console.print(f"[yellow]{text}")

    def close(self) -> None:
        self.progress.stop()
