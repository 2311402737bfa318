"""Streamed splits (webdataset shards, streamed Hugging Face datasets): who reads what, in which order.

A stream is read sequentially, shard by shard, so the map-style sampler of folders does not apply. Instead
every reader -- one *slot* per (process, loader worker) -- takes its part of the split:

* **Shards per slot.** The split's shards (in a per-epoch seeded order when shuffling) go round-robin to
  the ``world_size x workers`` slots; with fewer shards than slots, each slot reads every shard and keeps
  every ``slots``-th sample instead (correct, more reading: pack more shards than slots).
* **Evaluation** (``pad=False``): each slot yields all of its samples, so the processes together score
  every sample exactly once, whatever the number of shards; unreadable ones are left out and counted.
* **Training** (``pad=True`` with a batch size): each process yields exactly ``ceil(N / world_size) //
  batch`` full batches (DDP needs the same count everywhere). Batch ``b`` of a process comes from its slot
  ``b % workers`` (the loader's round-robin); a slot that runs out of samples reads its shards again (a new
  cycle, reshuffled), so no process waits on another. Samples are shuffled within a slot through a
  seeded buffer; unreadable ones are skipped (the next sample takes the place) and counted.
* **Resume** (``set_start``): the order above depends only on seed, epoch, process count and worker
  count, so a continued epoch skips, without decoding, the samples each slot had delivered and goes on
  with the batches the uninterrupted run would have seen next (the loader's first worker plays the slot
  of the next batch). That is exact when the process and worker counts are those of the interrupted run
  and no sample was unreadable; an unreadable sample before the resume point shifts the rest of its slot
  by one sample. Random augmentations of the continued part are drawn afresh, as for folders.
* **Length** (``len()``, the steps of an epoch): the split's own count, or the one given by hand
  (``train_num_samples`` / ``val_num_samples``, :func:`planned_length`), as timm's ``--train-num-samples``.
  A given count only sizes training epochs and progress: evaluation still reads the whole split and counts
  what it read (:func:`note_read` logs once when that differs from the length).
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Iterator

from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from spmkit.data.unreadable import Policy, UnreadableImage
from spmkit.errors import DataError

log = logging.getLogger("spmkit.data")

#: a raw sample: (key, encoded payload for ``decode``, class index or -1 when unknown)
Raw = tuple[str, Any, int]


def planned_length(known: int | None, given: int | None, where: str, option: str) -> int | None:
    """The length a stream plans with: ``given`` (the recipe's ``option``) when set, logged when it differs
    from the split's own count ``known``; else ``known`` (``None``: unknown, the caller refuses)."""
    if given is None:
        return known
    if known is not None and known != given:
        log.warning("%s: %s=%d sizes the epoch (the data says %d samples); evaluation still reads the whole "
                    "split and counts what it reads", where, option, given, known)
    return int(given)


def note_read(dataset: Any, read: int) -> None:
    """Log once per dataset when a stream's evaluation read ``read`` samples (scored + unreadable, over all
    processes) but its length says otherwise (a wrong ``val_num_samples`` or dataset info)."""
    for _ in range(4):  # through loader wrappers (CatchInWorkerStream, ...)
        if isinstance(dataset, StreamDataset) or dataset is None:
            break
        dataset = getattr(dataset, "dataset", None)
    if not isinstance(dataset, StreamDataset) or read == dataset.count or dataset._read_noted:
        return
    dataset._read_noted = True
    log.warning("%s: evaluation read %d samples, not the %d its length says%s; the metrics count the %d read",
                dataset.where, read, dataset.count,
                f" ({dataset.length_option}={dataset.count})" if dataset.length_option else "", read)


def buffer_shuffle(items: Iterator[Raw], size: int, rng: random.Random) -> Iterator[Raw]:
    """Shuffle a stream through a buffer of ``size`` items (seeded: the same order every time)."""
    buf: list[Raw] = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            i = rng.randrange(len(buf))
            buf[i], buf[-1] = buf[-1], buf[i]
            yield buf.pop()
    rng.shuffle(buf)
    yield from buf


class StreamDataset(IterableDataset):
    """One split read as a stream; items ``(image, target, n_skipped)`` as :class:`ImageFolderDataset`'s.

    Subclasses give the shard count, the per-shard sample counts and two methods: ``raw_samples(shard)``
    (undecoded, cheap) and ``decode(payload, key)`` -> PIL image (raising :class:`UnreadableImage`).
    ``len()`` is the split's size. :meth:`configure`, :meth:`set_epoch` and :meth:`set_start` are set in
    the main process before each pass; workers receive them with the dataset.
    """

    shuffle_buffer = 512

    def __init__(self, shard_counts: list[int | None], where: str, transform: Callable[[Image.Image], Any] | None,
                 unreadable: Policy, count: int | None = None, length_option: str | None = None) -> None:
        self.shard_counts = list(shard_counts)  # None: a shard of unknown length (then ``count`` gives the total)
        self.count = sum(self.shard_counts) if count is None else int(count)  # type: ignore[arg-type]
        self.length_option = length_option  # the recipe field that gave ``count`` by hand, if one did
        self._read_noted = False
        self.where = where
        self.transform = transform
        self.unreadable: Policy = unreadable
        self.rank, self.world_size = 0, 1
        self.shuffle, self.seed, self.pad = False, 0, False
        self.batch_size: int | None = None
        self.epoch, self.start_batch = 0, 0
        self._bad: set[str] = set()

    # -- what subclasses provide ----------------------------------------------------------------------
    def raw_samples(self, shard: int) -> Iterator[Raw]:
        raise NotImplementedError

    def decode(self, payload: Any, key: str) -> Image.Image:
        raise NotImplementedError

    # -- the plan ---------------------------------------------------------------------------------------
    def configure(self, rank: int, world_size: int, *, shuffle: bool, seed: int, pad: bool,
                  batch_size: int | None) -> None:
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.seed, self.pad, self.batch_size = shuffle, seed, pad, batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start_batch(self, batch: int) -> None:
        self.start_batch = batch

    def __len__(self) -> int:
        return self.count

    def per_process(self) -> int:
        """Samples this process yields in one training pass (padded); in evaluation an even share, for
        display only (the real share follows the shards)."""
        if self.pad:
            return -(-self.count // self.world_size)
        return self.count // self.world_size + (self.rank < self.count % self.world_size)

    def _shard_order(self) -> list[int]:
        order = list(range(len(self.shard_counts)))
        if self.shuffle:
            random.Random(f"shards:{self.seed}:{self.epoch}").shuffle(order)
        return order

    def _slot_raw(self, slot: int, slots: int, cycle: int, every: bool = False) -> Iterator[Raw]:
        """The raw samples of one slot in one cycle (``every``: the whole split, for an empty slot)."""
        order = self._shard_order() if cycle == 0 else self._reshuffled(cycle)
        by_shard = len(order) >= slots and not every
        known = all(c is not None for c in self.shard_counts)
        offsets = [0]
        for c in self.shard_counts:
            offsets.append(offsets[-1] + (c or 0))
        running = 0  # unknown shard lengths: samples numbered in reading order (the same for every slot)
        for pos, shard in enumerate(order):
            if by_shard and pos % slots != slot:
                continue
            seen = 0
            base = offsets[shard] if known else running
            for j, raw in enumerate(self.raw_samples(shard)):
                seen = j + 1
                if by_shard or every or (base + j) % slots == slot:
                    yield raw
            running += seen
            if self.shard_counts[shard] is None:
                continue  # a truncated shard of unknown length cannot be told from a short one
            missing = [j for j in range(seen, self.shard_counts[shard])  # type: ignore[arg-type]
                       if by_shard or every or (base + j) % slots == slot]
            if missing:  # a truncated shard: its missing samples count as unreadable
                key = f"{self.where} shard {shard}"
                if key not in self._bad:
                    self._bad.add(key)
                    log.warning("skipping %d unreadable samples: %s ends after %d of its %d samples",
                                len(missing), key, seen, self.shard_counts[shard])
                for j in missing:
                    yield f"{key} sample {j}", None, -1

    def _reshuffled(self, cycle: int) -> list[int]:
        order = list(range(len(self.shard_counts)))
        random.Random(f"shards:{self.seed}:{self.epoch}:{cycle}").shuffle(order)
        return order

    def _load(self, raw: Raw) -> tuple[Image.Image, int]:
        key, payload, target = raw
        if payload is None or target < 0:
            raise UnreadableImage(f"{key} ({'no image' if payload is None else 'no class label'})")
        return self.decode(payload, key), target

    def _note_bad(self, err: UnreadableImage, key: str) -> None:
        if key not in self._bad:
            self._bad.add(key)
            log.warning("skipping unreadable image: %s", err)

    def _sample(self, raw: Raw) -> tuple[Any, int] | None:
        """``(transformed image, target)`` of ``raw``, or ``None`` (logged once) when it cannot be read."""
        try:
            img, target = self._load(raw)
        except UnreadableImage as e:
            self._note_bad(e, raw[0])
            return None
        return (self.transform(img) if self.transform is not None else img), target

    def __iter__(self) -> Iterator[tuple[Any, int, int]]:
        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        if self.batch_size is None or not self.pad:
            yield from self._evaluation(self.rank * workers + wid, self.world_size * workers)
            return
        role = (wid + self.start_batch) % workers  # the loader's first worker delivers the next batch
        batches = self.per_process() // self.batch_size
        mine = len(range(role, batches, workers))
        done = len(range(role, min(self.start_batch, batches), workers))
        yield from self._training(self.rank * workers + role, self.world_size * workers,
                                  skip=done * self.batch_size, quota=(mine - done) * self.batch_size)

    def _evaluation(self, slot: int, slots: int) -> Iterator[tuple[Any, int, int]]:
        for raw in self._slot_raw(slot, slots, 0):
            sample = self._sample(raw)
            if sample is not None:
                yield *sample, 0
            elif self.unreadable == "leave_out":
                yield None, raw[2], 1

    def _training(self, slot: int, slots: int, skip: int, quota: int) -> Iterator[tuple[Any, int, int]]:
        produced, pending, cycle = 0, 0, 0
        skip_left = skip
        while produced < quota:
            rng = random.Random(f"buffer:{self.seed}:{self.epoch}:{slot}:{cycle}")
            raws = self._slot_raw(slot, slots, cycle)
            if self.shuffle:
                raws = buffer_shuffle(raws, self.shuffle_buffer, rng)
            readable_in_cycle, any_raw = 0, False
            for raw in raws:
                any_raw = True
                if skip_left:
                    skip_left -= 1
                    continue
                sample = self._sample(raw)
                if sample is None:
                    pending += 1
                    continue
                readable_in_cycle += 1
                yield *sample, pending
                pending, produced = 0, produced + 1
                if produced >= quota:
                    return
            if not any_raw and cycle == 0:  # an empty slot (fewer samples than slots): read the whole split
                yield from self._whole_split(quota - produced)
                return
            if any_raw and readable_in_cycle == 0 and not skip_left:
                raise DataError(f"no image of {self.where} could be read.")
            cycle += 1

    def _whole_split(self, quota: int) -> Iterator[tuple[Any, int, int]]:
        produced, pending = 0, 0
        while produced < quota:
            readable = 0
            for raw in self._slot_raw(0, 1, produced // max(self.count, 1), every=True):
                sample = self._sample(raw)
                if sample is None:
                    pending += 1
                    continue
                readable += 1
                yield *sample, pending
                pending, produced = 0, produced + 1
                if produced >= quota:
                    return
            if readable == 0:
                raise DataError(f"no image of {self.where} could be read.")
