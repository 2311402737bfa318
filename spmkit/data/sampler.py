"""Shuffling per-process shards of a dataset that can resume part-way through an epoch."""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class ShardSampler(Sampler[int]):
    """Indices of this process's shard: ``perm[rank::world]`` of a seeded per-epoch permutation.

    ``pad=True`` (training) repeats indices so every process has the same count, as DistributedSampler
    does; ``pad=False`` (evaluation) gives disjoint shards that together are the dataset exactly once.
    ``set_start(k)`` skips the first ``k`` indices of the next pass (resuming mid-epoch) without loading them.
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1, *, shuffle: bool = True, seed: int = 0,
                 pad: bool = True) -> None:
        self.n, self.rank, self.world_size = n, rank, world_size
        self.shuffle, self.seed, self.pad = shuffle, seed, pad
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, start: int) -> None:
        self.start = start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.pad and self.n % self.world_size:
            extra = self.world_size - self.n % self.world_size
            order += (order * (extra // max(self.n, 1) + 1))[:extra]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        indices = self._indices()[self.start :]
        self.start = 0
        return iter(indices)

    def __len__(self) -> int:
        if self.pad:
            return -(-self.n // self.world_size)
        return len(range(self.rank, self.n, self.world_size))
