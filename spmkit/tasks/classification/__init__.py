"""Image classification on ImageNet-layout folders, webdataset shards or Hugging Face datasets with the PVT/DeiT recipe (timm transforms, mixup, losses)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spmkit.data.sources import DataSource, open_source
from spmkit.data.stream import note_read
from spmkit.data.posterize import patch_posterize
from spmkit.data.unreadable import LeaveOutCollate
from spmkit.tasks.classification.device_pipeline import DeviceErasing, normalize_uint8, use_device_pipeline
from spmkit.tasks.recipe import TrainRecipe
from spmkit.errors import DataError, SpmkitError, shorten
from spmkit.registry import TASKS
from spmkit.tasks.base import Loaders, ModelSpec, PredictOptions, Split, Task, unwrap
from spmkit.tasks.skip_count import SkipCount

log = logging.getLogger("spmkit.tasks.classification")


class ClassificationRecipe(TrainRecipe):
    """PVT / DeiT ImageNet recipe (300 epochs, AdamW 5e-4 x batch/512, wd 0.05, cosine, 5 warm-up epochs)."""

    num_classes: int | None = Field(None, ge=1, le=2**20, description="None -> the number of class folders in train/")
    img_size: int | None = Field(None, ge=8, le=4096, description="None -> the model's input size")
    smoothing: float = Field(0.1, ge=0, lt=1)
    mixup: float = Field(0.8, ge=0)
    cutmix: float = Field(1.0, ge=0)
    mixup_prob: float = Field(1.0, ge=0, le=1)
    mixup_switch_prob: float = Field(0.5, ge=0, le=1)
    mixup_mode: Literal["batch", "pair", "elem"] = "batch"
    auto_augment: str | None = "rand-m9-mstd0.5-inc1"
    color_jitter: float = Field(0.4, ge=0, le=10)
    reprob: float = Field(0.25, ge=0, le=1)
    remode: Literal["const", "rand", "pixel"] = "pixel"
    recount: int = Field(1, ge=1, le=100)
    train_interpolation: str = "bicubic"
    scale: tuple[float, float] = (0.08, 1.0)
    hflip: float = Field(0.5, ge=0, le=1)
    crop_pct: float | None = Field(None, gt=0, le=1)
    train_num_samples: int | None = Field(
        None, ge=1, le=2**40, description="the train split's length for streamed data (shards, hf-stream:) as "
        "timm's --train-num-samples: sizes the epoch (ceil(N / processes) // batch_size steps); needed for a "
        "stream whose dataset info gives no num_examples; None -> the data's own count")
    val_num_samples: int | None = Field(
        None, ge=1, le=2**40, description="the val split's length for streamed data (timm's --val-num-samples): "
        "sizes progress only, evaluation still scores every sample it reads; None -> the data's own count")
    prefetch: Literal["auto", "on", "off"] = Field(
        "auto", description="device-side input pipeline: uint8 batches copied pinned and non-blocking, "
                            "normalisation and random erasing on the device; auto -> on for CUDA")

    loader: Literal["torch", "dali"] = Field(
        "torch", description="torch: PIL decoding in DataLoader workers with timm's transforms; dali: NVIDIA DALI "
        "(pip install \"spmkit[dali]\") decodes and crops JPEGs on the GPU (CPU-only with --devices cpu) from "
        "ImageNet folders and webdataset shards, feeding the device pipeline (prefetch is then ignored). Its "
        "augmentations differ from timm's: RandAugment is DALI's (always n ops, no mstd noise, fill 128), colour "
        "jitter in a fixed order, train_interpolation random -> bicubic, resizes by DALI (antialiased); and an "
        "unreadable image stops the run instead of being skipped (docs/training.md, 'The DALI loader')")

    @field_validator("prefetch", mode="before")
    @classmethod
    def _prefetch_words(cls, value: Any) -> Any:
        """YAML reads ``on`` / ``off`` as booleans (``--set prefetch=on`` too): take them as the words."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
    # knowledge distillation (spmkit.train.distill); DeiT's defaults: alpha 0.5, tau 1
    teacher: str | None = Field(None, description="distil from this teacher: a run checkpoint (RUN/best.pt), a "
                                "blueprint (with teacher_weights) or timm:NAME (with teacher_weights)")
    teacher_weights: str | None = Field(None, description="the weights of a blueprint or timm: teacher")
    distill_type: Literal["soft", "hard"] = Field("soft", description="soft: KL at temperature distill_tau; "
                                                  "hard: cross-entropy against the teacher's argmax (DeiT)")
    distill_alpha: float = Field(0.5, ge=0, le=1, description="loss = (1 - alpha) task loss + alpha distillation")
    distill_tau: float = Field(1.0, gt=0, le=100, description="softmax temperature of soft distillation")

    @model_validator(mode="after")
    def _teacher_weights_need_teacher(self) -> ClassificationRecipe:
        if self.teacher_weights and not self.teacher:
            raise ValueError("teacher_weights without teacher: name the teacher's blueprint or timm:NAME too")
        return self

    @model_validator(mode="after")
    def _augmentation_builds(self) -> ClassificationRecipe:
        """The augmentation settings are timm's: try them once (tiny size) so a typo is a recipe error."""
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale {tuple(self.scale)}: needs 0 < min <= max <= 1 (fractions of the image area)")
        from timm.data import create_transform

        try:
            create_transform(32, is_training=True, scale=self.scale, hflip=self.hflip, color_jitter=self.color_jitter,
                             auto_augment=self.auto_augment, interpolation=self.train_interpolation,
                             re_prob=self.reprob, re_mode=self.remode, re_count=self.recount)
        except Exception as err:  # noqa: BLE001 (timm reports bad names with assert, KeyError or ValueError)
            detail = str(err).strip().strip("'") or type(err).__name__
            raise ValueError(f"augmentation settings timm cannot use (auto_augment {shorten(self.auto_augment)}, "
                             f"train_interpolation {shorten(self.train_interpolation)}): "
                             f"{shorten(detail, 200, quote=False)}") from None
        if self.loader == "dali":
            from spmkit.data.dali import check_settings

            check_settings(self.auto_augment, self.train_interpolation)
        return self


def build_model(spec: ModelSpec, num_classes: int, img_size: int | None = None) -> nn.Module:
    """``timm:<name>`` -> a timm model; otherwise an spmkit blueprint (name, path or resolved dict).

    ``img_size`` builds an spmkit model for that input size (position tables, attention windows).
    """
    if spec.blueprint.startswith("timm:"):
        from spmkit.timm_models import create_timm_model

        kwargs = timm_kwargs(spec)
        try:
            return create_timm_model(spec.blueprint, num_classes=num_classes, **kwargs)
        except TypeError as e:  # an unknown keyword
            if not kwargs:
                raise
            raise SpmkitError(f"{spec.blueprint} does not take --model-set {', '.join(kwargs)}: {e}") from None
    import spmkit

    source = spmkit.load_blueprint(spec.resolved if spec.resolved is not None else spec.blueprint,
                                   overrides=() if spec.resolved is not None else list(spec.overrides))
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if img_size is not None and img_size != source.img_size:
        kwargs["img_size"] = img_size
    return spmkit.create_model(source, **kwargs)


def timm_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """``--model-set KEY=VALUE`` of a ``timm:`` model: keyword arguments of ``timm.create_model``
    (e.g. ``embed_dims=[16,32,48,64]``); one the model does not take is an SpmkitError."""
    from spmkit.io.overrides import split_override

    kwargs: dict[str, Any] = {}
    for text in spec.overrides:
        try:
            key, value = split_override(text)
        except ValueError:
            raise SpmkitError(f"--model-set {text!r}: expected KEY=VALUE (a keyword of the timm model).") from None
        if not key.isidentifier() or key in ("pretrained", "num_classes"):
            raise SpmkitError(f"--model-set {key!r}: not a keyword argument a timm model can be given here.")
        kwargs[key] = value
    return kwargs


def _no_images() -> tuple[None, None]:
    return None, None


@TASKS.register("classification")
class ClassificationTask(Task):
    """Softmax classification: top-1 / top-5 accuracy (percent), ``top1`` decides ``best.pt``."""

    name = "classification"
    recipe_class = ClassificationRecipe
    predict_output = "sheet"
    best_metric = "top1"
    best_mode = "max"
    recipe: ClassificationRecipe

    def __init__(self, recipe: ClassificationRecipe) -> None:
        super().__init__(recipe)
        self.mixup_fn = None
        self.train_loss_fn: nn.Module = nn.CrossEntropyLoss()
        self._skips = SkipCount()
        self._norm: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # uint8 batches: (mean, std)
        self._erasing: DeviceErasing | None = None  # random erasing on the device (device pipeline)
        self._source: DataSource | None = None

    def source(self, data: Path | str) -> DataSource:
        """The opened ``--data`` (a folder, shards or Hugging Face data; see ``spmkit.data.sources``)."""
        if self._source is None or self._source.spec != str(data):
            self._source = open_source(data)
        return self._source

    def data_info(self, data_dir: Path) -> dict[str, Any]:
        source = self.source(data_dir)
        if self.recipe.loader == "dali":  # before anything else: DALI installed, a source it reads
            from spmkit.data.dali import require_dali, supports

            require_dali()
            supports(source.kind, source.spec)
        classes = source.classes("train")
        source.classes("val")  # a missing val split fails now, not after the first epoch
        n = self.recipe.num_classes
        if n is not None and n != len(classes):
            raise DataError(
                f"{data_dir}/train has {len(classes)} class folders but the recipe sets num_classes={n}; "
                f"remove num_classes to use the folder count."
            )
        return {"num_classes": len(classes), "classes": classes}

    def eval_data_info(self, data_dir: Path, stored: dict[str, Any] | None) -> dict[str, Any]:
        """Checkpoint classes must cover val/; without a checkpoint the val folders are the classes."""
        classes = self.source(data_dir).classes("val")
        if stored is None:
            if self.recipe.num_classes is not None and self.recipe.num_classes != len(classes):
                raise DataError(f"{data_dir}/val has {len(classes)} class folders but num_classes is "
                                f"{self.recipe.num_classes}.")
            return {"num_classes": len(classes), "classes": classes}
        extra = sorted(set(classes) - set(stored["classes"]))
        if extra:
            raise DataError(
                f"{data_dir}/val has {len(classes)} class folders, {len(extra)} of them unknown to the model's "
                f"{stored['num_classes']}-class head (e.g. {extra[0]!r})."
            )
        return stored

    def build_model(self, spec: ModelSpec, info: dict[str, Any]) -> nn.Module:
        model = build_model(spec, info["num_classes"], self.recipe.img_size)
        head = getattr(model, "num_classes", info["num_classes"])
        if head != info["num_classes"]:
            raise DataError(f"the model's head has {head} classes but the data has {info['num_classes']}.")
        return model

    def data_config(self, model: nn.Module) -> dict[str, Any]:
        from timm.data import resolve_data_config

        args: dict[str, Any] = {}
        if self.recipe.img_size is not None:
            args["input_size"] = (3, self.recipe.img_size, self.recipe.img_size)
        if self.recipe.crop_pct is not None:
            args["crop_pct"] = self.recipe.crop_pct
        return resolve_data_config(args, model=unwrap(model))

    def build_dataset(self, data_dir: Path, split: Split, model: nn.Module, info: dict[str, Any]) -> Dataset:
        """Images through timm's transforms. With the device pipeline (``prefetch``, for the device the model
        is on) the transform ends at a uint8 tensor and :meth:`to_device` / :meth:`training_loss` do the rest
        on the device (see :mod:`spmkit.tasks.classification.device_pipeline`)."""
        from timm.data import create_transform

        cfg = self.data_config(model)
        r = self.recipe
        device = next(iter(unwrap(model).parameters()), torch.empty(0)).device
        on_device = use_device_pipeline(r.prefetch, device)
        if on_device:
            self._norm = (tuple(cfg["mean"]), tuple(cfg["std"]))
        if split == "train":
            tf = create_transform(
                cfg["input_size"], is_training=True, scale=r.scale, hflip=r.hflip, color_jitter=r.color_jitter,
                auto_augment=r.auto_augment, interpolation=r.train_interpolation, mean=cfg["mean"],
                std=cfg["std"], re_prob=r.reprob, re_mode=r.remode, re_count=r.recount, use_prefetcher=on_device,
            )
            tf = patch_posterize(tf)  # 0 bits kept gives a black image, not a ValueError (see the module)
            self._erasing = DeviceErasing(r.reprob, r.remode, r.recount, device) if on_device and r.reprob > 0 \
                else None
        else:
            tf = self.eval_transform(model, uint8=on_device)
        return self.source(data_dir).dataset(split, info["classes"], tf,
                                             "substitute" if split == "train" else "leave_out",
                                             num_samples=r.train_num_samples if split == "train" else r.val_num_samples)

    def build_loaders(self, data_dir: Path, model: nn.Module, info: dict[str, Any], rank: int,
                      world_size: int) -> Loaders | None:
        """``loader: dali``: DALI decodes and crops (see :mod:`spmkit.data.dali`); its uint8 batches go
        through the device pipeline (normalisation, random erasing, mixup / CutMix) as with ``prefetch``."""
        r = self.recipe
        if r.loader != "dali":
            return None
        from spmkit.data.dali import EvalCrop, TrainAugment, dali_input, dali_loaders

        cfg = self.data_config(model)
        device = next(iter(unwrap(model).parameters()), torch.empty(0)).device
        self._norm = (tuple(cfg["mean"]), tuple(cfg["std"]))
        self._erasing = DeviceErasing(r.reprob, r.remode, r.recount, device) if r.reprob > 0 else None
        size = tuple(cfg["input_size"][-2:])
        source = self.source(data_dir)
        manifest = source.manifest if source.kind == "shards" else None
        train, val = (dali_input(source.kind, source.spec, split, info["classes"], manifest)
                      for split in ("train", "val"))
        aug = TrainAugment(size, tuple(r.scale), r.hflip, r.train_interpolation, r.auto_augment, r.color_jitter)
        crop = EvalCrop(size, float(cfg["crop_pct"]), str(cfg["interpolation"]))
        train_loader, val_loader = dali_loaders(train, val, aug, crop, batch_size=r.batch_size,
                                                workers=r.resolved_workers(), seed=r.seed, rank=rank,
                                                world_size=world_size, device=device)
        return Loaders(train_loader, val_loader, train_loader, train.count, val.count)

    def collate_fn(self, split: Split):
        """Batches ``(images, targets, skipped)``: ``skipped`` counts the batch's unreadable images (left
        out in evaluation, so ``images`` is ``None`` when all of them were)."""
        from torch.utils.data import default_collate

        return LeaveOutCollate(default_collate, _no_images)

    def eval_transform(self, model: nn.Module, uint8: bool = False):
        """The evaluation transform (resize, centre crop at ``crop_pct``, normalise): PIL image -> tensor
        (``uint8``: stops before scaling and normalising, for the device pipeline)."""
        from timm.data import create_transform

        cfg = self.data_config(model)
        return create_transform(cfg["input_size"], is_training=False, interpolation=cfg["interpolation"],
                                mean=cfg["mean"], std=cfg["std"], crop_pct=cfg["crop_pct"], use_prefetcher=uint8)

    def to_device(self, batch: Any, device: torch.device) -> Any:
        """Move a batch to ``device``; a uint8 image batch (device pipeline) is normalised there."""
        images, targets, skipped = batch
        if images is not None and images.dtype == torch.uint8:
            if self._norm is None:
                raise RuntimeError("a uint8 image batch, but no dataset of the device pipeline was built")
            images = normalize_uint8(images.to(device, non_blocking=True), *self._norm, self.recipe.channels_last)
            return images, *super().to_device((targets, skipped), device)
        return super().to_device(batch, device)

    @torch.no_grad()
    def predict(self, model: nn.Module, files: list[Path], names: list[str], device: torch.device,
                options: PredictOptions, batch_size: int = 32):
        """Top-``options.top_k`` classes with softmax probabilities for each image, in the evaluation
        transform, ``batch_size`` images per forward; no picture per image (a ``sheet`` task)."""
        from PIL import Image

        tf = self.eval_transform(model)
        top_k = options.top_k
        k = min(top_k, len(names) or top_k)
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            tensors = []
            for p in chunk:
                try:
                    with Image.open(p) as im:
                        tensors.append(tf(im.convert("RGB")))
                except Exception as e:  # noqa: BLE001 - PIL raises many types
                    raise DataError(f"cannot read image {p}: {e}") from None
            with self.autocast(device):
                logits = model(torch.stack(tensors).to(device))
            probs = logits.float().softmax(-1).cpu()
            values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
            for vs, ix in zip(values.tolist(), indices.tolist()):
                top = [{"class": names[i] if i < len(names) else str(i), "index": i, "probability": round(v, 6)}
                       for v, i in zip(vs, ix)]
                # named by the request: "top5" even with fewer classes
                yield {"class": top[0]["class"], "probability": top[0]["probability"], f"top{top_k}": top}, None

    def draw_sheet(self, files: list[Path], predictions: list[dict[str, Any]]) -> torch.Tensor:
        """The images in a grid, each captioned with its file name and its top-3 classes."""
        from spmkit.data.coco import read_rgb
        from spmkit.tasks.dense.draw import contact_sheet

        return contact_sheet([read_rgb(f) for f in files], [_caption(p) for p in predictions])

    def setup_training(self, model: nn.Module, info: dict[str, Any]) -> None:
        from timm.data import Mixup
        from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

        r = self.recipe
        if r.mixup > 0 or r.cutmix > 0:
            self.mixup_fn = Mixup(
                mixup_alpha=r.mixup, cutmix_alpha=r.cutmix, prob=r.mixup_prob, switch_prob=r.mixup_switch_prob,
                mode=r.mixup_mode, label_smoothing=r.smoothing, num_classes=info["num_classes"],
            )
            self.train_loss_fn = SoftTargetCrossEntropy()
        elif r.smoothing > 0:
            self.train_loss_fn = LabelSmoothingCrossEntropy(smoothing=r.smoothing)
        else:
            self.train_loss_fn = nn.CrossEntropyLoss()

    def training_loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        images, targets, _ = batch
        self._skips.add(batch)  # stays on the device: no host sync per batch
        if self._erasing is not None:  # the device pipeline: random erasing here, as the host does in workers
            images = self._erasing(images)
        if self.mixup_fn is not None:
            images, targets = self._mix(images, targets)
        logits = model(images)
        return self.train_loss_fn(logits.float(), targets), {}

    def _mix(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """timm's Mixup / CutMix (in place); an odd batch's last image keeps its own smoothed label."""
        if images.shape[0] % 2 == 0:
            return self.mixup_fn(images, targets)
        from timm.data.mixup import mixup_target

        _, mixed = self.mixup_fn(images[:-1], targets[:-1])  # mixes the view, so ``images`` in place
        last = mixup_target(targets[-1:], self.mixup_fn.num_classes, 1.0, self.recipe.smoothing)
        return images, torch.cat([mixed, last.to(mixed.dtype)])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader, ctx) -> dict[str, float]:
        device = ctx.device
        totals = torch.zeros(5, dtype=torch.float64, device=device)  # n, loss sum, top1, top5, skipped
        model.eval()
        for batch in loader:
            images, targets, skipped = self.to_device(batch, device)
            totals[4] += skipped.sum()
            if images is None:  # every image of the batch was unreadable
                continue
            with self.autocast(device):
                logits = model(images)
            logits = logits.float()
            k = min(5, logits.shape[1])
            topk = logits.topk(k, dim=1).indices
            hit = topk.eq(targets[:, None])
            totals[0] += targets.numel()
            totals[1] += nn.functional.cross_entropy(logits, targets, reduction="sum").double()
            totals[2] += hit[:, :1].sum()
            totals[3] += hit.sum()
        ctx.all_reduce_sum(totals)
        if getattr(ctx, "is_main", True):  # a stream's given (or published) length that it did not yield: said once
            note_read(getattr(loader, "dataset", None), int(totals[0] + totals[4]))  # DALI loaders have none
        n = max(float(totals[0]), 1.0)
        return {
            "top1": 100.0 * float(totals[2]) / n,
            "top5": 100.0 * float(totals[3]) / n,
            "val_loss": float(totals[1]) / n,
            "val_images": float(totals[0]),
            "val_skipped": float(totals[4]),
        }

    def end_of_epoch(self, ctx) -> dict[str, float]:
        return self._skips.end_of_epoch(ctx)


def _caption(pred: dict[str, Any]) -> list[str]:
    top = next(v for k, v in pred.items() if k.startswith("top") and isinstance(v, list))
    path = Path(pred["image"])
    return [f"{path.parent.name}/{path.name}" if path.parent.name else path.name] + [f"{100 * t['probability']:5.1f}% {t['class']}" for t in top[:3]]
