"""Count the places in spmkit's own code that read a tensor back to the host (a device -> host sync on a GPU).

``torch.cuda.set_sync_debug_mode`` needs a GPU; on the CPU the suite instead patches the tensor methods that
sync (``item``, ``float(t)``, ``int(t)``, ``if t:``, ``tolist``, ``cpu``, ``numpy``, ``nonzero``, boolean-mask
indexing) and records each call made directly from a file under ``spmkit/train`` or ``spmkit/tasks``.
Library internals (torchvision's detectors sync inherently) and host-side data code (``spmkit/data``, in
loader workers) are not counted.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

import spmkit

WATCHED = [str(Path(spmkit.__file__).parent / part) for part in ("train", "tasks")]
METHODS = ("item", "__float__", "__int__", "__bool__", "__index__", "tolist", "cpu", "numpy", "nonzero")


class HostReads:
    """Where spmkit code read tensors back while :attr:`on`: ``(file:line, what, phase)`` entries."""

    def __init__(self) -> None:
        self.on = False
        self.phase: object = None
        self.sites: list[tuple[str, str, object]] = []

    def note(self, what: str) -> None:
        if not self.on:
            return
        frame = sys._getframe(2)
        name = frame.f_code.co_filename
        if any(name.startswith(w) for w in WATCHED):
            self.sites.append((f"{Path(name).name}:{frame.f_lineno} {frame.f_code.co_name}", what, self.phase))


def _is_mask(index: object) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


@contextmanager
def host_reads(monkeypatch) -> Iterator[HostReads]:
    """Patch the syncing tensor methods for the block; the returned :class:`HostReads` counts while ``on``."""
    reads = HostReads()

    def wrap(name: str):
        original = getattr(torch.Tensor, name)

        def method(self, *args, **kwargs):
            reads.note(name)
            return original(self, *args, **kwargs)

        return method

    for name in METHODS:
        monkeypatch.setattr(torch.Tensor, name, wrap(name))
    getitem = torch.Tensor.__getitem__

    def masked_getitem(self, index):
        if reads.on and _is_mask(index):
            reads.note("boolean-mask indexing")
        return getitem(self, index)

    monkeypatch.setattr(torch.Tensor, "__getitem__", masked_getitem)
    try:
        yield reads
    finally:
        monkeypatch.undo()
