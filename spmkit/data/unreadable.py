"""Unreadable images: left out of evaluation, substituted in training, and counted exactly either way.

A dataset raises :class:`UnreadableImage` for a file it cannot decode. :func:`first_readable` turns that
into a policy: ``"substitute"`` (training: the next readable item takes its place, keeping batch shapes
that mixup and DDP need) or ``"leave_out"`` (evaluation: the item becomes ``None``, every readable image
is scored exactly once). Either way the count is 1 for the requested index and 0 otherwise, so a
split's count is the number of unreadable items it asked for, whatever their order.
:class:`SkipUnreadable` applies a policy to a dataset of tuples, :class:`LeaveOutCollate` drops the
left-out items of a batch and appends their count.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Literal, TypeVar

import torch
from torch.utils.data import Dataset

from spmkit.errors import DataError

Policy = Literal["substitute", "leave_out"]
T = TypeVar("T")
log = logging.getLogger("spmkit.data")


class UnreadableImage(DataError):
    """An image (or its annotation) that cannot be decoded; names the file."""


def first_readable(load: Callable[[int], T], index: int, n: int, policy: Policy,
                   bad: set[int], where: str) -> tuple[T | None, int]:
    """``(load(index), 0)``; if that raises :class:`UnreadableImage`: ``(None, 1)`` with ``leave_out``,
    else the next readable item and 1. Each unreadable index is logged once (per process)."""
    for offset in range(n):
        i = (index + offset) % n
        try:
            item = load(i)
        except UnreadableImage as e:
            if i not in bad:
                bad.add(i)
                log.warning("skipping unreadable image: %s", e)
            if policy == "leave_out":
                return None, 1
            continue
        return item, int(offset > 0)
    raise DataError(f"no image of {where} could be read.")


class SkipUnreadable(Dataset):
    """Items ``(*item, skipped)`` of a dataset of tuples; a left-out item is ``(None, ..., 1)``."""

    def __init__(self, dataset: Dataset, policy: Policy, width: int = 2) -> None:
        self.dataset, self.policy, self.width = dataset, policy, width
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        item, skipped = first_readable(self.dataset.__getitem__, index, len(self), self.policy, self._bad,
                                       str(getattr(self.dataset, "img_dir", "the data set")))
        return (*item, skipped) if item is not None else (*([None] * self.width), skipped)

    def __getattr__(self, name: str) -> Any:  # coco, label_to_cat, class_names, transforms, ...
        if name in ("dataset", "policy", "width", "_bad"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("dataset", "policy", "width", "_bad"):
            object.__setattr__(self, name, value)
        else:  # e.g. ``transforms`` and ``class_names`` belong to the wrapped data set
            setattr(self.dataset, name, value)


class LeaveOutCollate:
    """``inner`` on the kept items (without their counts), plus the batch's skip count as a tensor.

    A batch whose items were all left out is ``(*empty, count)`` with ``empty`` from ``empty_batch``.
    """

    def __init__(self, inner: Callable[[list[Any]], Any], empty_batch: Callable[[], tuple[Any, ...]]) -> None:
        self.inner, self.empty_batch = inner, empty_batch

    def __call__(self, items: list[tuple[Any, ...]]) -> tuple[Any, ...]:
        skipped = torch.tensor(sum(int(it[-1]) for it in items), dtype=torch.int64)
        kept = [it[:-1] for it in items if it[0] is not None]
        batch = tuple(self.inner(kept)) if kept else self.empty_batch()
        return (*batch, skipped)
