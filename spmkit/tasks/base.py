"""The contract between the task-agnostic engine and a task (classification, detection, segmentation).

The engine (``spmkit.train.trainer``) owns everything that does not depend on the task: run folders,
launch and DDP, the optimiser / scheduler / EMA / AMP step, gradient accumulation and clipping, progress
bar, ``metrics.jsonl`` / CSV / TensorBoard, checkpoints and resume. A task is a ``Task`` subclass
registered by name::

    @TASKS.register("classification")
    class ClassificationTask(Task):
        recipe_class = ClassificationRecipe
        best_metric = "top1"
        ...

and chosen with ``spmkit train --task NAME`` / ``spmkit eval`` (the task name is stored in checkpoints).

What the engine calls, in this order (``self.recipe`` is a validated ``recipe_class`` instance)::

    info  = task.data_info(data_dir)                  # scan the data once; DataError on a bad folder
    model = task.build_model(model_spec, info)        # nn.Module on the CPU, fp32
    task.load_init_weights(model, path)               # only with recipe.init / --init
    loaders = task.build_loaders(data_dir, model, info, rank, world_size)  # None: the two datasets below
    train = task.build_dataset(data_dir, "train", model, info)       # in torch DataLoaders
    val   = task.build_dataset(data_dir, "val", model, info)
    task.setup_training(model, info)                  # e.g. build mixup and the loss
    for each batch (already moved to the device by task.to_device):
        loss, scalars = task.training_loss(model, batch)  # inside autocast; engine does backward/step
    metrics = task.evaluate(model, val_loader, ctx)   # every rank calls it; see below
    # spmkit eval: info = task.eval_data_info(data_dir, stored_info); build_model; build_dataset("val")
    task.end_of_epoch(ctx) -> dict                    # extra scalars, e.g. skipped corrupt images
    # spmkit predict: model from the run (eval mode), then, per image of the request, in order:
    for summary, drawn in task.predict(model, files, names, device, options): ...
    sheet = task.draw_sheet(files, predictions)       # only for predict_output == "sheet", on --output

A task is one module (or folder) of this package: its recipe class (a ``spmkit.tasks.recipe.TrainRecipe``
subclass), data pieces, model wrapper, evaluation, eval transform, prediction and drawing. Training
(``spmkit.train``), evaluation and prediction (``spmkit.infer``) and the CLI call only this contract.

Rules a task must keep:

- ``data_info`` returns only JSON-able primitives (it is stored in the run folder and in checkpoints,
  which load with ``weights_only=True``); classification stores ``num_classes`` and ``classes``.
- ``build_model`` builds from a :class:`ModelSpec`; the model may be wrapped by DDP and ``torch.compile``
  afterwards, so ``training_loss`` / ``evaluate`` must only call it (``model(x)``) or use attributes
  through :func:`unwrap`.
- ``training_loss`` returns a scalar loss (the engine divides by ``accum_steps`` and calls backward) and a
  dict of scalars (the same keys every batch) averaged over the epoch and logged as ``train_<name>``: 0-dim
  tensors, left on the device (``spmkit.train.scalars`` sums them there), or floats. It should not read the
  device (``.item()``, ``float(t)``, ``if t:``, boolean-mask indexing): that waits for the GPU every step.
- ``evaluate`` runs on **every** process with a loader whose sampler gives each process a disjoint shard
  (no padding, no duplicates). The task combines shards itself with ``ctx.all_reduce_sum`` (counts) or
  ``ctx.all_gather_object`` (predictions, e.g. for COCO evaluation), and returns the same ``dict[str,
  float]`` on every rank (at least on rank 0, which logs it). It must include ``best_metric``, and
  ``val_images`` (samples scored) and ``val_skipped`` (unreadable samples left out): when ``val_images`` is
  0 the base class raises a ``DataError`` instead of returning metrics (``spmkit.tasks.scored``).
- ``best_metric`` names the metric that decides ``best.pt``; ``best_mode`` is ``"max"`` or ``"min"``.
- Errors the user causes raise ``spmkit.errors.DataError`` / ``SpmkitError`` subclasses, never asserts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Literal, NamedTuple, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spmkit.tasks.recipe import TrainRecipe

Split = Literal["train", "val"]


class Collectives(Protocol):
    """What ``evaluate`` and ``end_of_epoch`` may use of the training processes: this process's device and
    rank, and the two collectives. ``spmkit.train.distributed.DistContext`` is one; the contract names only
    this, so that tasks sit below the training loop."""

    rank: int
    world_size: int
    device: torch.device

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor: ...

    def all_gather_object(self, obj: Any) -> list[Any]: ...


@dataclass(frozen=True)
class ModelSpec:
    """Which model to build: a blueprint (builtin name or YAML path) plus ``--set`` overrides.

    ``blueprint`` may also be ``timm:<model_name>`` for a plain timm model (baselines, benchmarks), or
    ``resolved`` may hold a resolved blueprint dict (from a run folder or checkpoint) that wins over the
    name.
    """

    blueprint: str
    overrides: tuple[str, ...] = ()
    resolved: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PredictOptions:
    """What ``spmkit predict`` asks of a task: classes shown per image (classification), the score a
    drawn detection needs (detection)."""

    top_k: int = 5
    score_threshold: float = 0.5


class Loaders(NamedTuple):
    """A task's own training data (:meth:`Task.build_loaders`): ``train_sampler`` answers ``len()`` (samples of
    this process per epoch), ``set_epoch`` and ``set_start``; ``val_loader`` gives each process a disjoint
    share of the split, together every sample once."""

    train_loader: Iterable[Any]
    val_loader: Iterable[Any]
    train_sampler: Any
    n_train: int
    n_val: int


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module under DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def move_to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move tensors in nested tuples / lists / dicts to ``device``; 4-D float tensors optionally NHWC."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {k: move_to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [move_to_device(v, device, channels_last) for v in batch]
        return type(batch)(moved) if not hasattr(batch, "_fields") else type(batch)(*moved)
    return batch


def native_cuda_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a CUDA GPU with bfloat16 arithmetic in hardware (Ampere and newer).

    Newer torch reports emulated bf16 (pre-Ampere) as supported unless ``including_emulation=False``;
    older torch has no such argument and reports only native support."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:
        return bool(torch.cuda.is_bf16_supported())


def resolve_amp(amp: str, device: torch.device) -> str:
    """A recipe's ``amp`` with ``auto`` decided by capability: ``bf16`` on a GPU with native bf16, else
    ``none`` (fp32; fp16 is never chosen for you, it needs gradient scaling and can overflow)."""
    if amp != "auto":
        return amp
    return "bf16" if native_cuda_bf16(device) else "none"


def autocast_for(amp: str, device: torch.device) -> torch.autocast:
    """``torch.autocast`` for a recipe's ``amp`` setting on ``device``."""
    amp = resolve_amp(amp, device)
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=amp != "none")


class Task(ABC):
    """One kind of training problem; see the module docstring for the engine's calling order."""

    #: registry name (set by subclasses; matches the ``TASKS.register`` name)
    name: ClassVar[str] = ""
    #: the pydantic recipe model with this task's defaults
    recipe_class: ClassVar[type[TrainRecipe]] = TrainRecipe
    #: the metric of ``evaluate`` that decides ``best.pt``
    best_metric: ClassVar[str] = ""
    best_mode: ClassVar[Literal["max", "min"]] = "max"
    #: what ``spmkit predict`` writes: one drawn PNG per image, or (on request) one contact sheet of all
    predict_output: ClassVar[Literal["per_image", "sheet"]] = "per_image"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every task's ``evaluate`` refuses to report metrics computed from zero samples (see
        :mod:`spmkit.tasks.scored`): a split with no readable sample is a ``DataError``, in train and eval."""
        super().__init_subclass__(**kwargs)
        if "evaluate" in cls.__dict__ and not getattr(cls.__dict__["evaluate"], "__isabstractmethod__", False):
            from spmkit.tasks.scored import scored_only

            cls.evaluate = scored_only(cls.__dict__["evaluate"])  # type: ignore[method-assign]

    def __init__(self, recipe: TrainRecipe) -> None:
        if not isinstance(recipe, self.recipe_class):
            raise TypeError(f"{type(self).__name__} needs a {self.recipe_class.__name__}, got {type(recipe).__name__}")
        self.recipe = recipe

    # -- data and model -------------------------------------------------------------------------
    @abstractmethod
    def data_info(self, data_dir: Path) -> dict[str, Any]:
        """Scan ``data_dir`` cheaply and return JSON-able facts (class names, counts); DataError if unusable."""

    @abstractmethod
    def build_model(self, spec: ModelSpec, info: dict[str, Any]) -> nn.Module:
        """Build the model (CPU, fp32) for the data described by ``info``."""

    @abstractmethod
    def build_dataset(self, data_dir: Path, split: Split, model: nn.Module, info: dict[str, Any]) -> Dataset:
        """The ``split`` dataset with its transforms (train: augmentation; val: evaluation transform)."""

    def build_loaders(self, data_dir: Path, model: nn.Module, info: dict[str, Any], rank: int,
                      world_size: int) -> Loaders | None:
        """Training loaders of the task's own (e.g. DALI, ``loader: dali``) instead of ``build_dataset`` in
        torch DataLoaders; ``None`` (the default) for those. Batches are what ``to_device`` takes."""
        return None

    def eval_data_info(self, data_dir: Path, stored: dict[str, Any] | None) -> dict[str, Any]:
        """``info`` for evaluating ``data_dir``: ``stored`` (from the checkpoint) checked against the folder,
        or, for weights without a run (``--weights``), whatever ``build_model`` needs from the val split."""
        return stored if stored is not None else self.data_info(data_dir)

    def collate_fn(self, split: Split) -> Callable[[list[Any]], Any] | None:
        """The DataLoader ``collate_fn``; ``None`` uses torch's default."""
        return None

    def init_target(self, model: nn.Module) -> nn.Module:
        """The sub-module that ``--init`` weights (an ImageNet backbone) load into; the model itself here."""
        return model

    def load_init_weights(self, model: nn.Module, path: str | Path) -> dict[str, list[str]]:
        """Load starting weights non-strictly; returns ``{"missing": [...], "unexpected": [...]}``."""
        from spmkit.convert.init_weights import load_init_weights

        return load_init_weights(self.init_target(model), path)

    def autocast(self, device: torch.device) -> torch.autocast:
        """The autocast context of ``recipe.amp`` for ``device`` (``auto``: see ``resolve_amp``)."""
        return autocast_for(self.recipe.amp, device)

    # -- training -------------------------------------------------------------------------------
    def setup_training(self, model: nn.Module, info: dict[str, Any]) -> None:
        """Build what ``training_loss`` needs (loss function, mixup); called once before training."""

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move a collated batch to ``device`` (images NHWC-strided when ``recipe.channels_last``)."""
        return move_to_device(batch, device, self.recipe.channels_last)

    @abstractmethod
    def training_loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Forward a training batch; return the scalar loss and extra scalars to log (0-dim tensors or floats)."""

    def batch_size_of(self, batch: Any) -> int:
        """Number of images in a batch (for images/s); the first tensor's first dimension by default."""
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        if isinstance(first, dict):
            first = next(iter(first.values()))
        return int(first.shape[0]) if isinstance(first, torch.Tensor) else len(first)

    # -- evaluation -----------------------------------------------------------------------------
    @abstractmethod
    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader, ctx: Collectives) -> dict[str, float]:
        """Metrics over this process's shard of ``loader``, combined over processes (see module docstring)."""

    def nonfinite_loss_cause(self) -> str | None:
        """Why a training loss seen so far could be NaN / inf because of the data (e.g. a segmentation batch
        whose every label is ignored), for the engine's stop message; ``None`` when the task knows of none."""
        return None

    def end_of_epoch(self, ctx: Collectives) -> dict[str, float]:
        """Extra per-epoch values to log (summed over processes by the task if needed)."""
        return {}

    # -- inference ------------------------------------------------------------------------------
    def eval_transform(self, model: nn.Module) -> Callable[..., Any]:
        """The evaluation transform of one image (what ``build_dataset(..., "val", ...)`` applies)."""
        raise NotImplementedError(f"the {self.name!r} task has no evaluation transform")

    def predict(self, model: nn.Module, files: list[Path], names: list[str], device: torch.device,
                options: PredictOptions) -> Iterator[tuple[dict[str, Any], torch.Tensor | None]]:
        """For each of ``files`` in order: a short JSON-able summary and, for ``per_image`` tasks, the drawn
        picture (``uint8``, CHW). ``model`` is in eval mode on ``device``; ``names`` are the class names."""
        raise NotImplementedError(f"the {self.name!r} task does not predict")

    def draw_sheet(self, files: list[Path], predictions: list[dict[str, Any]]) -> torch.Tensor:
        """One picture of ``files`` captioned with their ``predictions`` (``sheet`` tasks, on ``--output``)."""
        raise NotImplementedError(f"the {self.name!r} task draws no contact sheet")

    @classmethod
    def can_predict(cls) -> bool:
        """Whether the task implements ``predict``."""
        return cls.predict is not Task.predict
