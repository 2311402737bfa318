"""Persistent loader workers are re-seeded per pass as fresh ones would be (spmkit.train.worker_seed)."""

from __future__ import annotations

import random

import torch
from torch.utils.data import Dataset

from spmkit.data.sampler import ShardSampler
from spmkit.train.setup import _loader


class _Draws(Dataset):
    """Each item: the index and one draw from each generator the augmentations use, in the worker."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int):
        import numpy as np

        return torch.tensor([float(i), torch.rand(()).item(), random.random(), float(np.random.rand())])


def _pass(loader, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # what the loop does before each epoch
    state = torch.get_rng_state()
    out = torch.cat(list(loader))
    assert torch.equal(torch.get_rng_state(), state)  # the loader drew nothing from the main generator
    return out


def test_persistent_workers_reseeded_per_pass() -> None:
    sampler = ShardSampler(6, shuffle=False)
    loader = _loader(_Draws(), sampler, 2, 1, None, False, torch.device("cpu"))
    assert loader.persistent_workers
    a, b, c = _pass(loader, 1), _pass(loader, 2), _pass(loader, 1)
    assert torch.equal(a, c)  # the same seed -> the same draws, though the worker lived on
    assert not torch.equal(a[:, 1:], b[:, 1:])  # another epoch's seed -> other draws
    assert a[:, 1:].unique().numel() == a[:, 1:].numel()  # no generator repeats itself within a pass
    sampler.set_start(4)  # mid-epoch resume: the pass starts later, still seeded by the loop
    d = _pass(loader, 1)
    assert d[:, 0].tolist() == [4.0, 5.0]
    fresh = _loader(_Draws(), ShardSampler(6, shuffle=False), 2, 1, None, False, torch.device("cpu"))
    assert torch.equal(_pass(fresh, 1), a)  # a resumed run's new workers draw what the long-lived ones did
