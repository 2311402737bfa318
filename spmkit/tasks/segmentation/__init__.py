"""ADE20K semantic segmentation: Semantic FPN (or UperNet) on any blueprint's strides-4..32 maps, the
40k-iteration poly recipe, mIoU / per-class IoU / pixel accuracy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spmkit.data.ade20k import ADE20K, IGNORE_INDEX
from spmkit.data.unreadable import SkipUnreadable
from spmkit.data.segmentation_transforms import (
    SegmentationEvalTransform,
    SegmentationTrainTransform,
    collate_segmentation,
)
from spmkit.tasks.segmentation.inference import infer_logits
from spmkit.tasks.segmentation.label_watch import LabelWatch
from spmkit.tasks.segmentation.metrics import ConfusionMatrix
from spmkit.tasks.segmentation.model import Segmentor
from spmkit.tasks.recipe import TrainRecipe
from spmkit.errors import DataError
from spmkit.registry import TASKS
from spmkit.tasks.base import ModelSpec, PredictOptions, Split, Task, unwrap
from spmkit.tasks.skip_count import SkipCount
from spmkit.tasks.dense.common import (
    DenseModelError,
    RepeatDataset,
    build_backbone,
    iteration_epoch_length,
    leave_out_collate,
    mean_std,
)
from spmkit.io.value_types import Float, Int


class SegmentationRecipe(TrainRecipe):
    """The PVT / SPM ADE20K recipe: Semantic FPN, 40k iterations at batch 16, AdamW 2e-4, poly 0.9,
    512x512 crops of images rescaled around 2048x512. ``epochs`` splits ``iters`` into evaluation rounds.

    Setting ``epochs`` without ``iters`` (``spmkit train --task segmentation --epochs 2``) trains by epochs,
    as classification and detection do; the 40k-iteration default applies when neither is set.
    """

    @model_validator(mode="after")
    def _epochs_without_iters_means_epochs(self) -> "SegmentationRecipe":
        if "epochs" in self.model_fields_set and "iters" not in self.model_fields_set:
            self.iters = None
        return self

    head: Literal["semantic_fpn", "upernet"] = "semantic_fpn"
    sync_bn: bool = Field(True, description="SyncBatchNorm in multi-process CUDA training (mmseg's SyncBN)")
    iters: int | None = Field(40000, ge=1, description="total optimizer steps; None -> real epochs over the data")
    epochs: int = Field(10, ge=1, description="with iters: evaluation rounds of iters/epochs steps each")
    batch_size: int = Field(2, ge=1, description="images per process per step (2 x 8 GPUs = 16)")
    lr: float | None = Field(2e-4, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    sched: str = "poly"
    decay_rate: float = Field(0.9, description="the poly schedule's power")
    warmup_epochs: float = Field(0, ge=0)
    min_lr: float = 0.0
    num_classes: int | None = Field(None, ge=1, le=2**20, description="None -> objectInfo150.txt's count, else 150")
    scale: tuple[Int(ge=1, le=8192), Int(ge=1, le=8192)] = (2048, 512)
    ratio_range: tuple[Float(gt=0, le=16), Float(gt=0, le=16)] = (0.5, 2.0)
    crop_size: tuple[Int(ge=1, le=8192), Int(ge=1, le=8192)] = (512, 512)
    cat_max_ratio: float = Field(0.75, gt=0, le=1)
    flip_prob: float = Field(0.5, ge=0, le=1)
    inference: Literal["whole", "slide"] = "whole"
    slide_stride: tuple[Int(ge=1, le=8192), Int(ge=1, le=8192)] = (341, 341)
    fpn_channels: int = Field(256, ge=8, le=8192, description="Semantic FPN: FPN width")
    head_channels: int = Field(128, ge=8, le=8192, description="Semantic FPN: 128; UperNet: use 512")
    dropout: float = Field(0.1, ge=0, lt=1)


@torch.no_grad()
def segment_one(model: nn.Module, task: "SegmentationTask", image: torch.Tensor, names: list[str],
                dev: torch.device, legend: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """The class map blended over the image, with a legend of the classes present (most pixels first)."""
    from spmkit.tasks.dense.draw import add_legend, draw_segmentation

    r = task.recipe
    x, _ = task.eval_transform(model)(image, torch.zeros(1))
    logits = infer_logits(model, x[None].to(dev), mode=r.inference, crop_size=r.crop_size, stride=r.slide_stride,
                          out_size=tuple(image.shape[-2:]))
    label_map = logits.argmax(1)[0].cpu()
    counts = torch.bincount(label_map.flatten(), minlength=model.num_classes).double() / label_map.numel()
    order = [i for i in counts.argsort(descending=True).tolist() if counts[i] > 0]
    name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
    drawn = draw_segmentation(image, label_map, model.num_classes)
    if legend:
        drawn = add_legend(drawn, [(f"{name(i)} {100 * float(counts[i]):.0f}%", i) for i in order],
                           model.num_classes)
    return drawn, {"pixel_fraction": {name(i): round(float(counts[i]), 4) for i in order[:5]}}


@TASKS.register("segmentation")
class SegmentationTask(Task):
    """ADE20K-layout semantic segmentation; ``mIoU`` (percent) decides ``best.pt``."""

    name = "segmentation"
    recipe_class = SegmentationRecipe
    best_metric = "mIoU"
    best_mode = "max"
    recipe: SegmentationRecipe

    def __init__(self, recipe: SegmentationRecipe) -> None:
        super().__init__(recipe)
        self._skips = SkipCount()
        self._labels = LabelWatch(IGNORE_INDEX)  # too-high and all-ignored labels, watched on the device

    def data_info(self, data_dir: Path) -> dict[str, Any]:
        return self._info(ADE20K(data_dir, "train"))

    def eval_data_info(self, data_dir: Path, stored: dict[str, Any] | None) -> dict[str, Any]:
        info = self._info(ADE20K(data_dir, "val"))  # a clear error now if the split is missing
        return stored if stored is not None else info

    def _info(self, ds: ADE20K) -> dict[str, Any]:
        """Class count: the recipe's ``num_classes``, else objectInfo150.txt's lines, else 150."""
        n = self.recipe.num_classes or ds.num_classes
        names = ds.class_names if len(ds.class_names) == n else [str(i) for i in range(n)]
        return {"num_classes": n, "classes": names}

    def build_model(self, spec: ModelSpec, info: dict[str, Any]) -> nn.Module:
        r = self.recipe
        backbone = build_backbone(spec)
        mean, std = mean_std(backbone)
        head_kwargs: dict[str, Any] = {"channels": r.head_channels, "dropout": r.dropout}
        if r.head == "semantic_fpn":
            head_kwargs["fpn_channels"] = r.fpn_channels
        try:
            model = Segmentor(backbone, info["num_classes"], head=r.head, image_mean=mean, image_std=std, **head_kwargs)
        except ValueError as e:
            raise DenseModelError(f"cannot build a {r.head} segmentor on {spec.blueprint}: {e}") from None
        return model

    def init_target(self, model: nn.Module) -> nn.Module:
        return unwrap(model).backbone.body

    def build_dataset(self, data_dir: Path, split: Split, model: nn.Module, info: dict[str, Any]) -> Dataset:
        r = self.recipe
        if split == "val":
            val = ADE20K(data_dir, "val", transforms=self.eval_transform(model))
            val.class_names = list(info["classes"])  # the model's classes name the per-class IoUs
            return SkipUnreadable(val, "leave_out")
        ds = ADE20K(
            data_dir,
            "train",
            transforms=SegmentationTrainTransform(
                scale=r.scale, ratio_range=r.ratio_range, crop_size=r.crop_size,
                cat_max_ratio=r.cat_max_ratio, flip_prob=r.flip_prob,
            ),
        )
        train = SkipUnreadable(ds, "substitute")
        if r.iters is not None:
            return RepeatDataset(train, iteration_epoch_length(r.iters, r.epochs, r.batch_size, r.accum_steps))
        return train

    def collate_fn(self, split: Split):
        """Batches ``(images, labels, skipped)``; ``skipped`` counts unreadable pairs (left out in evaluation)."""
        return leave_out_collate(collate_segmentation)

    def end_of_epoch(self, ctx) -> dict[str, float]:
        return self._skips.end_of_epoch(ctx)

    # -- training -------------------------------------------------------------------------------
    def training_loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy over the labelled pixels; no device -> host sync (see ``label_watch``): a batch with a
        label >= num_classes gets a NaN loss, which stops the run with :meth:`nonfinite_loss_cause`."""
        images, labels = batch[0], batch[1]
        self._skips.add(batch)
        logits = model(images)
        labels, too_high = self._labels(labels, unwrap(model).num_classes)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
        return torch.where(too_high, torch.full_like(loss, float("nan")), loss), {}

    def nonfinite_loss_cause(self) -> str | None:
        return self._labels.cause()

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader, ctx) -> dict[str, float]:
        r = self.recipe
        net = unwrap(model)
        was_training = net.training
        net.eval()
        cm = ConfusionMatrix(net.num_classes, IGNORE_INDEX)
        skipped = torch.zeros(2, dtype=torch.float64, device=ctx.device)  # images scored, left out
        for batch in loader:
            images, labels = batch[0], batch[1]
            skipped[1] += float(batch[2]) if len(batch) > 2 else 0.0
            skipped[0] += len(images)
            if isinstance(images, torch.Tensor):
                images, labels = list(images), list(labels)
            for image, label in zip(images, labels):
                x = image.to(ctx.device, non_blocking=True)[None]
                with self.autocast(ctx.device):
                    logits = infer_logits(
                        net, x, mode=r.inference, crop_size=r.crop_size, stride=r.slide_stride,
                        out_size=tuple(label.shape[-2:]),
                    )
                try:
                    cm.update(logits.float().argmax(1)[0].cpu(), label)
                except ValueError as e:
                    raise DataError(f"validation labels do not fit the model: {e}") from None
        net.train(was_training)
        cm.matrix = ctx.all_reduce_sum(cm.matrix.to(ctx.device)).cpu()
        ctx.all_reduce_sum(skipped)
        res = cm.compute()
        names = getattr(loader.dataset, "class_names", None) or []
        metrics = {"mIoU": 100 * res["mIoU"], "mAcc": 100 * res["mAcc"], "pixel_acc": 100 * res["pixel_acc"],
                   "val_images": float(skipped[0]), "val_skipped": float(skipped[1])}
        for i, iou in enumerate(res["per_class_iou"]):
            if iou == iou:  # classes absent from labels and predictions have no IoU
                name = names[i] if i < len(names) else str(i)
                metrics[f"IoU.{re.sub(r'[^A-Za-z0-9_]+', '_', name)}"] = 100 * iou
        return {k: (v if v == v else 0.0) for k, v in metrics.items()}

    # -- inference ------------------------------------------------------------------------------
    def eval_transform(self, model: nn.Module) -> SegmentationEvalTransform:
        """Image and label map resized by ``recipe.scale`` (the label map kept at full size)."""
        return SegmentationEvalTransform(self.recipe.scale)

    def predict(self, model: nn.Module, files: list[Path], names: list[str], device: torch.device,
                options: PredictOptions):
        """Per image: the class map over the image with a legend, and the largest classes' pixel shares."""
        from spmkit.data.coco import read_rgb

        for f in files:
            drawn, summary = segment_one(model, self, read_rgb(f), names, device)
            yield summary, drawn
