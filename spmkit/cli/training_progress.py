"""The training loop's console on a terminal (rank 0): a live bar per epoch, the summary, evaluations."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from spmkit.train.reporter import Level, format_epoch, format_evaluation


class RichReporter:
    """Implements ``spmkit.train.reporter.Reporter`` with one bar per epoch; the summary, evaluation and
    epoch lines are the same plain lines that ``train.log`` gets. The per-step log lines are left to the bar."""

    def __init__(self, console: Console | None = None) -> None:
        # soft_wrap: long lines stay whole instead of breaking at the terminal width
        self.console = console or Console(soft_wrap=True, highlight=False)
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.3e}  {task.fields[ips]:.0f} img/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self._task = None
        self.progress.start()

    def summary(self, lines: list[str]) -> None:
        for line in lines:
            self.progress.console.print(escape(line))

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        if self._task is not None:
            self.progress.remove_task(self._task)
        self._task = self.progress.add_task("train", total=total, completed=done, epoch=f"{epoch}/{epochs}",
                                            loss=float("nan"), lr=0.0, ips=0.0)

    def step(self, done: int, loss: float, lr: float, images_per_s: float) -> None:
        if self._task is not None:
            self.progress.update(self._task, completed=done, loss=loss, lr=lr, ips=images_per_s)

    def log_step(self, info: dict[str, Any]) -> None:
        pass  # the live bar shows it; train.log gets the line

    def evaluation(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.progress.console.print(f"[bold cyan]{escape(format_evaluation(epoch, metrics))}")

    def end_epoch(self, row: dict[str, Any]) -> None:
        self.progress.console.print(escape(format_epoch(row)))

    def message(self, text: str, level: Level = "warning") -> None:
        self.progress.console.print(f"[yellow]{escape(text)}" if level == "warning" else escape(text))

    def close(self) -> None:
        self.progress.stop()
