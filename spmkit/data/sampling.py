"""The per-process sampler of a split: :class:`ShardSampler` for map-style data, a stream's own plan else.

Both answer ``len()`` (samples of this process per pass), ``set_epoch`` and ``set_start`` (samples to
skip when resuming mid-epoch), so the training loop treats folders, shards and streams alike;
:func:`loader_sampler` is what goes into the ``DataLoader`` (``None`` for a stream, which splits itself).
"""

from __future__ import annotations

from torch.utils.data import Dataset, Sampler

from spmkit.data.stream import StreamDataset
from spmkit.data.sampler import ShardSampler


class StreamPlan:
    """Sampler-like handle of a :class:`StreamDataset`: forwards epoch and start to the dataset."""

    def __init__(self, dataset: StreamDataset, rank: int, world_size: int, *, shuffle: bool, seed: int,
                 pad: bool, batch_size: int | None) -> None:
        self.dataset = dataset
        self.batch_size = batch_size or 1
        dataset.configure(rank, world_size, shuffle=shuffle, seed=seed, pad=pad, batch_size=batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def set_start(self, start: int) -> None:
        self.dataset.set_start_batch(start // self.batch_size)

    def __len__(self) -> int:
        return self.dataset.per_process()


def process_sampler(dataset: Dataset, rank: int = 0, world_size: int = 1, *, shuffle: bool, seed: int = 0,
                    pad: bool, batch_size: int | None = None) -> ShardSampler | StreamPlan:
    """This process's share of ``dataset`` (``batch_size``: a stream's training batches; see ``spmkit.data.stream``)."""
    if isinstance(dataset, StreamDataset):
        return StreamPlan(dataset, rank, world_size, shuffle=shuffle, seed=seed, pad=pad,
                          batch_size=batch_size if pad else None)
    return ShardSampler(len(dataset), rank, world_size, shuffle=shuffle, seed=seed, pad=pad)


def loader_sampler(sampler: ShardSampler | StreamPlan) -> Sampler | None:
    """The ``sampler=`` argument of the DataLoader: the sampler itself, or ``None`` for a stream."""
    return sampler if isinstance(sampler, Sampler) else None
