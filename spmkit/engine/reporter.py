"""How the training loop reports progress: a small protocol, with a plain-text default.

The CLI passes a rich progress bar (``spmkit.cli.training_progress``); library users get log lines.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

log = logging.getLogger("spmkit.train")


class Reporter(Protocol):
    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` begins with ``done`` of ``total`` batches already done."""

    def step(self, done: int, loss: float, lr: float, images_per_s: float) -> None:
        """``done`` batches of the epoch are finished."""

    def end_epoch(self, row: dict[str, Any]) -> None:
        """The epoch's metrics row (as written to metrics.jsonl)."""

    def message(self, text: str) -> None:
        """A one-line notice (resumed, skipped images, missing keys, ...)."""

    def close(self) -> None: ...


class LogReporter:
    """Reports through the ``spmkit.train`` logger: one line per epoch, notices as warnings."""

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        log.info("epoch %d/%d: %d batches%s", epoch, epochs, total, f" (resuming at {done})" if done else "")

    def step(self, done: int, loss: float, lr: float, images_per_s: float) -> None:
        pass

    def end_epoch(self, row: dict[str, Any]) -> None:
        log.info("epoch %s: %s", row.get("epoch"),
                 ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))

    def message(self, text: str) -> None:
        log.warning(text)

    def close(self) -> None:
        pass


class NullReporter(LogReporter):
    """Says nothing (ranks other than 0)."""

    def start_epoch(self, *a: Any) -> None:
        pass

    def end_epoch(self, row: dict[str, Any]) -> None:
        pass

    def message(self, text: str) -> None:
        pass
