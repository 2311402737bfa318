"""How the training loop reports progress: a small protocol, plain-text lines, and ``RUN/train.log``.

The CLI passes a rich live display on a terminal (``spmkit.cli.training_progress``) and a
:class:`TextReporter` writing to stdout elsewhere (batch jobs, ``> log``); library users get log lines.
Whatever the console shows, the trainer also writes as plain lines to ``RUN/train.log``
(:class:`TeeReporter`), so a run can be followed from its folder.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

log = logging.getLogger("spmkit.train")

Level = Literal["info", "warning"]

#: evaluation metrics shown first, in this order, when a task reports them; the rest follow as reported
_METRIC_ORDER = ("top1", "top5", "ema_top1", "ema_top5",
                 *(f"{p}{kind}_{s}" for p in ("", "ema_") for kind in ("bbox", "segm")
                   for s in ("AP", "AP50", "AP75", "APs", "APm", "APl")),
                 "mIoU", "mAcc", "pixel_acc", "ema_mIoU", "val_loss", "ema_val_loss")
#: bookkeeping values of ``evaluate`` that are not metrics
_NOT_METRICS = ("val_images", "val_skipped", "detections")


class Reporter(Protocol):
    def summary(self, lines: list[str]) -> None:
        """The start-up block (model, data, device, recipe, run folder), once per call of ``train``."""

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` begins with ``done`` of ``total`` batches already done."""

    def step(self, done: int, loss: float, lr: float, images_per_s: float) -> None:
        """``done`` batches of the epoch are finished (every optimizer update; for live displays)."""

    def log_step(self, info: dict[str, Any]) -> None:
        """Every ``log_every_steps`` optimizer steps: step, epoch, loss, lr, img/s, data time, memory, ETA."""

    def evaluation(self, epoch: int, metrics: dict[str, Any]) -> None:
        """The metrics of an evaluation (each time one is computed)."""

    def end_epoch(self, row: dict[str, Any]) -> None:
        """The epoch's metrics row (as written to metrics.jsonl)."""

    def message(self, text: str, level: Level = "warning") -> None:
        """A one-line notice (resumed, skipped images, missing keys, checkpoints written, ...)."""

    def close(self) -> None: ...


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"


def format_step(info: dict[str, Any]) -> str:
    """``step 20/120 | epoch 1/2 batch 20/60 | loss 1.0986 | lr 3.20e-04 | 412 img/s | data 0.012s | ...``"""
    parts = [f"step {info['step']}/{info['total_steps']}",
             f"epoch {info['epoch']}/{info['epochs']} batch {info['batch']}/{info['batches']}",
             f"loss {info['loss']:.4f}", f"lr {info['lr']:.3e}", f"{info['images_per_s']:.1f} img/s",
             f"data {info['data_time_s']:.3f}s/batch"]
    if info.get("memory_mib") is not None:
        parts.append(f"mem {info['memory_mib']:,.0f} MiB")
    parts.append(f"ETA {_duration(info.get('eta_s', float('nan')))}")
    return " | ".join(parts)


def metric_items(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """The headline metrics of an evaluation in display order: the known names (top-1/5, box and mask AP,
    mIoU, ...) when the task reports any, else its first 12 numbers (per-class IoU, recalls stay in the files)."""
    known = [(k, metrics[k]) for k in _METRIC_ORDER if k in metrics]
    if known:
        return known
    rest = [(k, v) for k, v in metrics.items() if k not in _NOT_METRICS and isinstance(v, (int, float))]
    return rest[:12]


def format_evaluation(epoch: int, metrics: dict[str, Any]) -> str:
    """``eval epoch 2: top1 66.67 | top5 100 | val_loss 0.8123``"""
    return f"eval epoch {epoch}: " + " | ".join(f"{k} {_num(v)}" for k, v in metric_items(metrics))


def format_epoch(row: dict[str, Any]) -> str:
    """``epoch 2 done: train_loss 1.02 | lr 1e-05 | 402 img/s | 0:00:03 | best_top1 66.67``"""
    parts = [f"train_loss {_num(row.get('train_loss'))}", f"lr {row.get('lr', float('nan')):.3e}",
             f"{row.get('images_per_s', 0.0):.1f} img/s", f"time {_duration(row.get('epoch_time_s', float('nan')))}"]
    parts += [f"{k} {_num(v)}" for k, v in row.items() if k.startswith("best_") and v is not None]
    return f"epoch {row['epoch']} done: " + " | ".join(parts)


class TextReporter:
    """Plain lines through ``write`` (a ``print``-like callable): the summary, a line every
    ``log_every_steps`` steps, each evaluation, each epoch, notices. No live display."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def summary(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        self.write(f"epoch {epoch}/{epochs}: {total} batches" + (f" (resuming at batch {done})" if done else ""))

    def step(self, done: int, loss: float, lr: float, images_per_s: float) -> None:
        pass

    def log_step(self, info: dict[str, Any]) -> None:
        self.write(format_step(info))

    def evaluation(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.write(format_evaluation(epoch, metrics))

    def end_epoch(self, row: dict[str, Any]) -> None:
        self.write(format_epoch(row))

    def message(self, text: str, level: Level = "warning") -> None:
        self.write(f"warning: {text}" if level == "warning" else text)

    def close(self) -> None:
        pass


def stdout_writer(line: str) -> None:
    """Print a line to stdout and flush (a redirected stdout is block-buffered otherwise)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class LogReporter(TextReporter):
    """Reports through the ``spmkit.train`` logger (library default): lines as info, notices as warnings."""

    def __init__(self) -> None:
        super().__init__(log.info)

    def message(self, text: str, level: Level = "warning") -> None:
        (log.warning if level == "warning" else log.info)(text)


class NullReporter(TextReporter):
    """Says nothing (ranks other than 0)."""

    def __init__(self) -> None:
        super().__init__(lambda line: None)


class FileLog:
    """Appends lines to a text file (``RUN/train.log``), flushed line by line so ``tail -f`` follows it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f = open(self.path, "a", buffering=1, encoding="utf-8")

    def write(self, line: str) -> None:
        if not self._f.closed:
            self._f.write(line + "\n")

    def close(self) -> None:
        self._f.close()


class TeeReporter:
    """Forwards every call to the console reporter and writes plain lines to ``log`` (``train.log``)."""

    def __init__(self, console: Reporter, log_file: FileLog) -> None:
        self.console = console
        self.file = log_file
        self.text = TextReporter(log_file.write)

    def summary(self, lines: list[str]) -> None:
        self.console.summary(lines)
        self.text.summary(lines)

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        self.console.start_epoch(epoch, epochs, total, done)
        self.text.start_epoch(epoch, epochs, total, done)

    def step(self, done: int, loss: float, lr: float, images_per_s: float) -> None:
        self.console.step(done, loss, lr, images_per_s)

    def log_step(self, info: dict[str, Any]) -> None:
        self.console.log_step(info)
        self.text.log_step(info)

    def evaluation(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.console.evaluation(epoch, metrics)
        self.text.evaluation(epoch, metrics)

    def end_epoch(self, row: dict[str, Any]) -> None:
        self.console.end_epoch(row)
        self.text.end_epoch(row)

    def message(self, text: str, level: Level = "warning") -> None:
        self.console.message(text, level)
        self.text.message(text, level)

    def error(self, text: str) -> None:
        """An error that ends the run: only the file (the CLI prints it on the console itself)."""
        self.file.write(f"error: {text}")

    def close(self) -> None:
        self.console.close()
        self.file.close()
