"""No metric from zero samples: an evaluation that scored no sample is an input error, never a number.

Every task's ``evaluate`` reports ``val_images`` (samples scored) and ``val_skipped`` (unreadable samples
left out). :func:`require_scored` turns ``val_images == 0`` into a ``DataError`` naming the split and the
count of unreadable files, so neither ``spmkit train`` (metrics.jsonl, ``best.pt``) nor ``spmkit eval``
ever writes or shows a top-1, AP or mIoU computed from nothing. :class:`spmkit.tasks.base.Task` applies it
to the ``evaluate`` of every task subclass, so a new task gets the check without doing anything.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

from spmkit.errors import DataError


class NoSamplesError(DataError):
    """A split with no readable sample: nothing to compute a metric from."""


def require_scored(metrics: Mapping[str, Any], split: str = "val") -> None:
    """Raise :class:`NoSamplesError` when ``metrics`` were computed from zero samples of ``split``."""
    scored = metrics.get(f"{split}_images")
    if scored is None or float(scored) > 0:
        return
    skipped = int(float(metrics.get(f"{split}_skipped", 0) or 0))
    why = (f"all {skipped} of its files are unreadable (each is named in a warning above)" if skipped
           else "it holds no sample to score")
    raise NoSamplesError(
        f"the {split} split has no readable sample: {why}. No metric can be computed from zero samples, so "
        f"none is reported and no best.pt is chosen on it. Replace or remove the unreadable files, or point --data at a "
        f"folder whose {split}/ split has readable images.")


def scored_only(evaluate: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
    """Wrap a task's ``evaluate`` so that its metrics pass :func:`require_scored` before anyone sees them."""
    if getattr(evaluate, "_spmkit_scored", False):
        return evaluate

    @functools.wraps(evaluate)
    def checked(*args: Any, **kwargs: Any) -> dict[str, float]:
        metrics = evaluate(*args, **kwargs)
        require_scored(metrics)
        return metrics

    checked._spmkit_scored = True  # type: ignore[attr-defined]
    return checked
