"""Per-pass seeds for data-loader workers that stay alive across epochs (``persistent_workers``).

Fresh workers each epoch get their RNG seeds from torch's generator at ``iter(loader)``, which the loop
seeds from (seed, rank, epoch, step), so an epoch's augmentations depend only on where the run stands, and
a run resumed at an epoch boundary draws the same ones as the uninterrupted run. Persistent workers are
started once; to keep that property :class:`PassSeedSampler` derives one seed per pass in the main process
from the seed the loop last set (``torch.initial_seed()``, so no number is drawn from the main process's
generator: its dropout / drop-path stream does not depend on whether the workers were just started) and
sends it along with every index; :class:`PassSeededDataset` re-seeds ``random``, numpy and torch in a
worker whenever the pass seed changes (``seed + worker_id``, as torch seeds fresh workers). The loader
itself gets a private generator for its one base-seed draw. In the main process (``workers=0``) nothing
is re-seeded: the main process's generators go on as before.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info


class PassSeedSampler(Sampler[tuple[int, int]]):
    """``(pass_seed, index)`` for each index of ``sampler``; ``pass_seed`` is drawn once per pass."""

    def __init__(self, sampler: Sampler[int]) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        seed = (torch.initial_seed() * 6364136223846793005 + 1442695040888963407) % 2**63  # not the main seed
        for index in self.sampler:
            yield seed, index

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


class PassSeededDataset(Dataset):
    """``dataset`` indexed by ``(pass_seed, index)``; a worker re-seeds its generators on a new pass."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._seed: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        seed, index = key
        if seed != self._seed:
            self._seed = seed
            info = get_worker_info()
            if info is not None:
                s = (seed + info.id) % 2**63
                torch.manual_seed(s)
                random.seed(s)
                np.random.seed(s % 2**32)
        return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
