"""NVIDIA DALI as the loader of classification runs (recipe ``loader: dali``): decode and crop on the GPU.

DALI is an optional extra (``pip install "spmkit[dali]"``); this module imports it only when a loader is
built. It reads the two on-disk sources spmkit knows: ImageNet-layout folders (``fn.readers.file`` with
spmkit's own file list and class indices, so the classes are those of the torch loader) and webdataset
shard folders (``fn.readers.webdataset`` over the manifest's ``train-*.tar`` / ``val-*.tar``). On a CUDA
device the decoder runs as ``mixed`` (nvJPEG / the hardware decoder) and every later operator on the GPU;
on a CPU (``--devices cpu``) the same pipeline runs CPU-only (``device_id=None``), which is how the tests
run it.

Batches are ``(images, targets, skipped)`` as the torch loader's: ``images`` uint8 NCHW on the run's
device, so the classification task's device pipeline (``spmkit.tasks.classification.device_pipeline``)
normalises them and applies random erasing and mixup / CutMix exactly as for ``prefetch: on``.

* **Training**: random-resized crop fused with decoding (``fn.decoders.image_random_crop``: the recipe's
  ``scale``, timm's ratio 3/4-4/3), resize to the input size, then RandAugment (``nvidia.dali.auto_aug``,
  when ``auto_augment`` is ``rand-...``) or colour jitter (when it is not set), and a horizontal flip with
  probability ``hflip``. The readers reshuffle every DALI epoch (the same reader seed on every process,
  so the processes' shards partition the data); the stream runs on across spmkit's epochs, each process
  taking ``ceil(N / processes) // batch`` batches per epoch, as the torch loader does.
* **Validation**: decode, resize the shorter side to ``size / crop_pct``, centre crop. Each process reads
  its shard (``shard_id`` / ``num_shards``, ``stick_to_shard``) padded to whole batches
  (``pad_last_batch``) and the iterator removes the padding (``LastBatchPolicy.PARTIAL``), so every image
  is scored exactly once across processes (``val_images`` is the split's size).
* **Unreadable images**: DALI stops the pipeline at a file it cannot decode and does not say which; the
  error becomes a :class:`~spmkit.errors.DataError` that points to ``spmkit data check`` (which names
  them) and to ``loader: torch`` (which skips and counts them). Nothing is skipped silently.
* **Resume** continues at the right step with a stream seeded afresh (from seed, epoch and batch): DALI
  readers cannot seek, so the remaining samples of the interrupted epoch are not those the
  uninterrupted run would have read.

The augmentation differences against the torch (timm) loader are listed in docs/training.md.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from spmkit.errors import DataError, SpmkitError

log = logging.getLogger("spmkit.data")

INSTALL = 'pip install "spmkit[dali]"'
#: timm's RandomResizedCrop aspect-ratio range (the recipe has no field for it)
RATIO = (3 / 4, 4 / 3)
#: recipe interpolation names -> DALI interpolation (``random`` -> bicubic; see docs/training.md)
INTERPOLATIONS = {"bilinear": "INTERP_LINEAR", "bicubic": "INTERP_CUBIC", "nearest": "INTERP_NN",
                  "lanczos": "INTERP_LANCZOS3", "random": "INTERP_CUBIC"}
#: bytes a shard's ``.cls`` text is padded to (class indices up to 10**11)
LABEL_BYTES = 12
READER = "reader"


class DaliMissing(SpmkitError):
    """``loader: dali`` without NVIDIA DALI installed."""


def require_dali() -> Any:
    """The ``nvidia.dali`` module, or :class:`DaliMissing` saying how to install it."""
    try:
        import nvidia.dali as dali
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except ImportError as e:
        raise DaliMissing(f"loader=dali needs NVIDIA DALI, which is not installed here ({e}). Install it with "
                          f"{INSTALL} (a CUDA 12 build of DALI, about 420 MB; it also runs CPU-only with "
                          f"--devices cpu), or train with the default loader=torch.") from None
    return dali


def check_settings(auto_augment: str | None, interpolation: str) -> None:
    """ValueError for recipe settings the DALI loader cannot follow (the recipe reports it as a field error)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"loader=dali: train_interpolation {interpolation!r} is not one of "
                         f"{', '.join(INTERPOLATIONS)}")
    if auto_augment:
        rand_augment_args(auto_augment)


def rand_augment_args(spec: str) -> dict[str, Any]:
    """timm's ``rand-m9-n2-mstd0.5-inc1`` -> DALI ``rand_augment`` arguments (n, magnitude bin, monotonic)."""
    parts = spec.split("-")
    if parts[0] != "rand":
        raise ValueError(f"loader=dali: auto_augment {spec[:60]!r} is not RandAugment (rand-m9-...); DALI's "
                         "loader has RandAugment only (set auto_augment to null for colour jitter instead)")
    m, n, increasing = 9.0, 2, False
    for part in parts[1:]:
        key = part.rstrip("0123456789.")
        value = part[len(key):]
        try:
            if key == "m":
                m = float(value)
            elif key == "n":
                n = int(value)
            elif key == "inc":
                increasing = bool(int(value))
        except ValueError:
            raise ValueError(f"loader=dali: cannot read {part!r} of auto_augment {spec[:60]!r}") from None
    m = min(max(m, 0.0), 10.0)  # timm's scale: magnitude / 10 of each op's range
    return {"n": n, "m": int(round(m * 10)), "num_magnitude_bins": 101, "monotonic_mag": increasing}


@dataclass(frozen=True)
class TrainAugment:
    """The training crop and augmentations (from the classification recipe)."""

    size: tuple[int, int]  # (height, width)
    scale: tuple[float, float]
    hflip: float
    interpolation: str
    auto_augment: str | None
    color_jitter: float


@dataclass(frozen=True)
class EvalCrop:
    """Validation: resize so both sides are at least ``size / crop_pct``, then centre crop ``size``."""

    size: tuple[int, int]
    crop_pct: float
    interpolation: str

    @property
    def resize(self) -> tuple[int, int]:
        return math.floor(self.size[0] / self.crop_pct), math.floor(self.size[1] / self.crop_pct)


@dataclass(frozen=True)
class DaliInput:
    """What one split's reader reads: image files with class indices, or webdataset shards."""

    where: str  # the split, for messages
    data: str  # --data, for messages
    count: int
    files: list[str] | None = None
    labels: list[int] | None = None
    tars: list[str] | None = None


def supports(kind: str, spec: str) -> None:
    """DataError unless ``kind`` is a source DALI reads (an ImageNet-layout folder or webdataset shards)."""
    if kind not in ("folder", "shards"):
        raise DataError(f"loader=dali reads ImageNet-layout folders and webdataset shard folders; --data {spec} "
                        f"is a {kind} source. Train it with loader=torch.")


def dali_input(kind: str, spec: str, split: str, classes: list[str], manifest: dict[str, Any] | None) -> DaliInput:
    """The reader input of ``split`` of a folder (``kind`` ``folder``) or a shard folder (``shards``)."""
    supports(kind, spec)
    root = Path(spec)
    if kind == "folder":
        from spmkit.data.imagenet import scan_split

        samples = scan_split(root / split, classes)
        return DaliInput(f"{root / split}", spec, len(samples), files=[p for p, _ in samples],
                         labels=[t for _, t in samples])
    from spmkit.data.shards import split_entry

    entry = split_entry(manifest or {}, root, split)
    return DaliInput(f"{root}/{split}-*.tar", spec, int(entry["count"]), tars=[str(root / s["file"]) for s in entry["shards"]])


def _interp(types: Any, name: str) -> Any:
    return getattr(types, INTERPOLATIONS.get(name, "INTERP_CUBIC"))


def _read(fn: Any, types: Any, inp: DaliInput, *, train: bool, rank: int, world: int, seed: int) -> tuple[Any, Any]:
    """Encoded images and labels of this process's shard (labels: int32, or a shard's padded ``.cls`` text)."""
    common: dict[str, Any] = dict(shard_id=rank, num_shards=world, name=READER, seed=seed)
    order = dict(shuffle_after_epoch=True) if train else dict(stick_to_shard=True, pad_last_batch=True)
    if inp.files is not None:
        return fn.readers.file(files=inp.files, labels=inp.labels, **common, **order)
    from spmkit.data.decode import IMAGE_SUFFIXES

    if train:
        order["random_shuffle"] = True  # also within a buffer: whole shards alone are visited in order
    images, cls = fn.readers.webdataset(paths=inp.tars, ext=[";".join(IMAGE_SUFFIXES), "cls"],
                                        missing_component_behavior="error", **common, **order)
    return images, fn.pad(cls, axes=(0,), shape=(LABEL_BYTES,), fill_value=0)


def _decoder_args(gpu: bool) -> dict[str, Any]:
    # DALI's ImageNet examples: preallocated nvJPEG buffers avoid reallocations in the first iterations
    return dict(device="mixed", device_memory_padding=211025920, host_memory_padding=140544512) if gpu \
        else dict(device="cpu")


def _train_graph(fn: Any, types: Any, inp: DaliInput, aug: TrainAugment, *, gpu: bool, rank: int, world: int,
                 reader_seed: int) -> tuple[Any, Any]:
    images, labels = _read(fn, types, inp, train=True, rank=rank, world=world, seed=reader_seed)
    images = fn.decoders.image_random_crop(images, output_type=types.RGB, random_area=list(aug.scale),
                                           random_aspect_ratio=list(RATIO), num_attempts=10, **_decoder_args(gpu))
    h, w = aug.size
    images = fn.resize(images, resize_x=w, resize_y=h, interp_type=_interp(types, aug.interpolation),
                       antialias=True)
    if aug.auto_augment:
        from nvidia.dali.auto_aug import rand_augment

        images = rand_augment.rand_augment(images, shape=[h, w], fill_value=128,
                                           **rand_augment_args(aug.auto_augment))
    elif aug.color_jitter > 0:
        cj = aug.color_jitter
        factor = lambda: fn.random.uniform(range=[max(0.0, 1 - cj), 1 + cj])  # noqa: E731
        images = fn.color_twist(images, brightness=factor(), contrast=factor(), saturation=factor())
    mirror = fn.random.coin_flip(probability=aug.hflip) if aug.hflip > 0 else 0
    return fn.crop_mirror_normalize(images, dtype=types.UINT8, output_layout="CHW", mirror=mirror), labels


def _eval_graph(fn: Any, types: Any, inp: DaliInput, crop: EvalCrop, *, gpu: bool, rank: int,
                world: int) -> tuple[Any, Any]:
    images, labels = _read(fn, types, inp, train=False, rank=rank, world=world, seed=0)
    images = fn.decoders.image(images, output_type=types.RGB, **_decoder_args(gpu))
    (h, w), (rh, rw) = crop.size, crop.resize
    images = fn.resize(images, resize_x=rw, resize_y=rh, mode="not_smaller",
                       interp_type=_interp(types, crop.interpolation), antialias=True)
    return fn.crop_mirror_normalize(images, dtype=types.UINT8, output_layout="CHW", crop=(h, w), crop_pos_x=0.5,
                                    crop_pos_y=0.5, out_of_bounds_policy="pad"), labels


def parse_labels(labels: torch.Tensor) -> torch.Tensor:
    """Reader labels -> int64 ``(B,)``: int32 ``(B, 1)`` of the file reader, or the shard reader's ``.cls``
    text padded with zero bytes (ASCII digits; other bytes such as a newline are ignored)."""
    if labels.dtype != torch.uint8:
        return labels.reshape(labels.shape[0], -1)[:, 0].long()
    digits = labels.long() - 48
    is_digit = (digits >= 0) & (digits <= 9)
    value = torch.zeros(labels.shape[0], dtype=torch.long)
    for col in range(labels.shape[1]):
        value = torch.where(is_digit[:, col], value * 10 + digits[:, col], value)
    value[~is_digit.any(dim=1)] = -1
    if bool((value < 0).any()):
        raise DataError("a webdataset sample's .cls is not a class index (text digits); re-pack the data with "
                        "spmkit data pack.")
    return value


def _dali_error(err: Exception, inp: DaliInput) -> DataError:
    text = str(err)
    if "decoders" in text or "nvImageCodec" in text:
        return DataError(f"DALI could not decode an image of {inp.where} and stopped (DALI has no skip for "
                         f"unreadable images and does not name the file). `spmkit data check {inp.data}` lists "
                         f"the unreadable images; remove them, or train with loader=torch, which skips and counts "
                         f"them.")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "Critical error" not in ln]
    detail = next((ln for ln in lines if "encountered" not in ln and "pipeline object" not in ln), text[:200])
    return DataError(f"the DALI loader stopped reading {inp.where}: {detail[:300]}")


class _DaliBatches:
    """A DALI pipeline behind ``DALIGenericIterator``, as batches ``(images, targets, skipped)``."""

    def __init__(self, build: Callable[[], Any], inp: DaliInput, reader: bool) -> None:
        self.build, self.inp, self.reader = build, inp, reader
        self._iter: Any = None

    def _make(self) -> Any:
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        # DALI's RandAugment uses DALI's own deprecated aliases and forces their warnings on: recorded, dropped
        with warnings.catch_warnings(record=True):
            pipe = self.build()
            if self.reader:  # evaluation: one pass over this process's shard, padding removed
                return DALIGenericIterator([pipe], ["images", "labels"], reader_name=READER, auto_reset=True,
                                           last_batch_policy=LastBatchPolicy.PARTIAL)
            return DALIGenericIterator([pipe], ["images", "labels"], size=-1)  # training: an endless stream

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        try:
            if self._iter is None:
                self._iter = self._make()
            for out in self._iter:
                images, labels = out[0]["images"], out[0]["labels"]
                if images.shape[0] == 0:  # a shard shorter than the others: a wholly padded batch
                    continue
                yield images, parse_labels(labels.cpu()), torch.zeros((), dtype=torch.int64)
        except RuntimeError as e:
            self._iter = None  # DALI's pipeline is unusable after an error
            raise _dali_error(e, self.inp) from None


class DaliTrainLoader:
    """The training stream: loader and sampler at once (``len``: samples per process per epoch, as a
    padded sampler's; ``set_epoch`` / ``set_start``: seed the stream when it is first read)."""

    def __init__(self, make: Callable[[int, int], Any], inp: DaliInput, world: int) -> None:
        self.make, self.inp, self.world = make, inp, world
        self.epoch, self.start = 0, 0
        self._batches: _DaliBatches | None = None
        self._stream: Iterator[Any] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, start: int) -> None:
        self.start = start

    def __len__(self) -> int:
        return -(-self.inp.count // self.world)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if self._stream is None:  # built at the first pass: a resumed run seeds it from where it resumes
            self._batches = _DaliBatches(lambda: self.make(self.epoch, self.start), self.inp, reader=False)
            self._stream = self._batches.batches()
        return self._stream


class DaliEvalLoader:
    """Validation batches of this process's shard; every image of the split once over all processes."""

    def __init__(self, make: Callable[[], Any], inp: DaliInput) -> None:
        self.inp = inp
        self._batches = _DaliBatches(make, inp, reader=True)

    def __len__(self) -> int:
        return self.inp.count

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return self._batches.batches()


def dali_loaders(train: DaliInput, val: DaliInput, aug: TrainAugment, crop: EvalCrop, *, batch_size: int,
                 workers: int, seed: int, rank: int, world_size: int, device: torch.device
                 ) -> tuple[DaliTrainLoader, DaliEvalLoader]:
    """The training stream and the validation loader of one process (``device``: where batches land)."""
    dali = require_dali()
    from nvidia.dali import fn, types

    gpu = device.type == "cuda"
    device_id = (device.index if device.index is not None else torch.cuda.current_device()) if gpu else None
    threads = max(1, workers)

    def make_train(epoch: int, start: int) -> Any:
        reader_seed = (seed * 1_000_003 + 7919 * epoch + start) % 2**31  # the same on every process
        pipe_seed = (reader_seed + 104_729 * (rank + 1)) % 2**31  # augmentations differ per process

        @dali.pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, seed=pipe_seed,
                           enable_conditionals=bool(aug.auto_augment))
        def pipeline():
            return _train_graph(fn, types, train, aug, gpu=gpu, rank=rank, world=world_size,
                                reader_seed=reader_seed)

        return pipeline()

    def make_val() -> Any:
        @dali.pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, seed=seed % 2**31)
        def pipeline():
            return _eval_graph(fn, types, val, crop, gpu=gpu, rank=rank, world=world_size)

        return pipeline()

    return DaliTrainLoader(make_train, train, world_size), DaliEvalLoader(make_val, val)
