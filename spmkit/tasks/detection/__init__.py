"""COCO object detection and instance segmentation: torchvision's Mask R-CNN or RetinaNet on any
blueprint's strides-4..32 maps, the 1x recipe, COCOeval box and mask AP."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader, Dataset

from spmkit.data.coco import CocoDetection, collate_detection
from spmkit.data.detection_transforms import DetectionTransform
from spmkit.data.unreadable import SkipUnreadable
from spmkit.tasks.detection.coco_eval import STAT_NAMES, CocoEvaluator, detections_to_coco
from spmkit.tasks.detection.model import build_detector
from spmkit.tasks.recipe import TrainRecipe
from spmkit.errors import DataError, SpmkitError
from spmkit.registry import TASKS
from spmkit.tasks.base import ModelSpec, PredictOptions, Split, Task, unwrap
from spmkit.tasks.skip_count import SkipCount
from spmkit.tasks.dense.common import DenseModelError, build_backbone, leave_out_collate, mean_std, world_size


class DetectionRecipe(TrainRecipe):
    """The 1x COCO recipe of the PVT / SPM papers (mmdet's ``1x`` schedule)."""

    detector: Literal["mask_rcnn", "retinanet"] = "mask_rcnn"
    sync_bn: bool = Field(True, description="SyncBatchNorm in multi-process CUDA training (mmdet's SyncBN)")
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(2, ge=1, description="images per process per step (2 x 8 GPUs = 16)")
    lr: float | None = Field(1e-4, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    sched: str = "multistep"
    decay_milestones: list[int] = Field(default_factory=lambda: [8, 11])
    decay_rate: float = 0.1
    warmup_epochs: float = Field(0, ge=0, description="set from warmup_iters once the epoch length is known")
    warmup_iters: int = Field(500, ge=0, description="linear warm-up over this many optimizer steps (mmdet)")
    warmup_lr: float = 1e-7
    min_lr: float = 0.0
    min_size: int = Field(800, ge=32, le=8192, description="shorter image side after resizing (torchvision's transform)")
    max_size: int = Field(1333, ge=32, le=8192, description="cap on the longer side")
    flip_prob: float = Field(0.5, ge=0, le=1)
    fpn_channels: int = Field(256, ge=8, le=8192, description="FPN, RPN and RetinaNet head width")
    box_head_dim: int = Field(1024, ge=8, le=16384, description="Mask R-CNN box head (two FC layers) width")
    mask_head_dim: int = Field(256, ge=8, le=8192, description="Mask R-CNN mask head (four 3x3 convs) width")
    detector_kwargs: dict[str, int | float | bool] = Field(
        default_factory=dict,
        description="more torchvision constructor arguments, e.g. rpn_post_nms_top_n_train, box_batch_size_per_image",
    )
    score_threshold: float = Field(0.05, ge=0, le=1, description="detections below this score are dropped")
    detections_per_img: int = Field(100, ge=1, le=10000)


class DetectionRecipeError(SpmkitError):
    """A detection recipe setting torchvision refuses."""


def build_detector_model(backbone: nn.Module, recipe: DetectionRecipe, num_classes: int) -> nn.Module:
    """The recipe's detector for ``num_classes`` foreground classes on ``backbone``."""
    mean, std = mean_std(backbone)
    try:
        return build_detector(
            backbone, recipe.detector, num_classes, min_size=recipe.min_size, max_size=recipe.max_size,
            image_mean=mean, image_std=std, fpn_channels=recipe.fpn_channels, box_head_dim=recipe.box_head_dim,
            mask_head_dim=recipe.mask_head_dim, score_thresh=recipe.score_threshold,
            detections_per_img=recipe.detections_per_img, **recipe.detector_kwargs,
        )
    except ValueError as e:
        if "torchvision" in str(e):
            raise DetectionRecipeError(f"detector_kwargs: {e}") from None
        raise


@torch.no_grad()
def detect_one(model: nn.Module, image: torch.Tensor, names: list[str], score_threshold: float,
               dev: torch.device) -> tuple[torch.Tensor, dict[str, Any]]:
    """Boxes (and masks) scoring at least ``score_threshold``, drawn with readable captions."""
    from spmkit.tasks.dense.draw import draw_detections

    pred = {k: v.float().cpu() for k, v in model([image.float().div(255).to(dev)])[0].items()}
    drawn, n = draw_detections(image, pred, names, score_threshold=score_threshold)
    keep = pred["scores"] >= score_threshold
    dets = [{"class": names[int(l) - 1] if 0 < int(l) <= len(names) else int(l), "score": round(float(s), 4),
             "box": [round(float(v), 1) for v in b]}
            for b, l, s in zip(pred["boxes"][keep], pred["labels"][keep], pred["scores"][keep])]
    return drawn, {"detections": dets, "count": n}


@TASKS.register("detection")
class DetectionTask(Task):
    """COCO detection; ``bbox_AP`` (percent, COCOeval AP@[.5:.95]) decides ``best.pt``. Every COCOeval
    summary number is reported as ``bbox_<name>`` / ``segm_<name>`` (mask numbers with Mask R-CNN)."""

    name = "detection"
    recipe_class = DetectionRecipe
    best_metric = "bbox_AP"
    best_mode = "max"
    recipe: DetectionRecipe

    def __init__(self, recipe: DetectionRecipe) -> None:
        super().__init__(recipe)
        self._datasets: dict[tuple[str, str], CocoDetection] = {}
        self._skips = SkipCount()

    # -- data and model -------------------------------------------------------------------------
    def _dataset(self, data_dir: Path, split: str) -> CocoDetection:
        key = (str(data_dir), split)
        if key not in self._datasets:  # annotation files are large: read each once
            # evaluation reads ground truth through COCOeval, so val targets need no decoded masks
            masks = self.recipe.detector == "mask_rcnn" and split == "train"
            self._datasets[key] = CocoDetection(data_dir, split, with_masks=masks)
        return self._datasets[key]

    @staticmethod
    def _info(ds: CocoDetection) -> dict[str, Any]:
        return {"num_classes": ds.num_classes, "classes": ds.class_names, "category_ids": ds.cat_ids}

    def data_info(self, data_dir: Path) -> dict[str, Any]:
        return self._info(self._dataset(data_dir, "train"))

    def eval_data_info(self, data_dir: Path, stored: dict[str, Any] | None) -> dict[str, Any]:
        val = self._info(self._dataset(data_dir, "val"))
        if stored is not None and stored.get("category_ids") != val["category_ids"]:
            raise DataError(
                f"{data_dir}/annotations/instances_val2017.json has categories {val['category_ids']} but the "
                f"model was trained on {stored.get('category_ids')}."
            )
        return stored if stored is not None else val

    def build_model(self, spec: ModelSpec, info: dict[str, Any]) -> nn.Module:
        try:
            return build_detector_model(build_backbone(spec), self.recipe, info["num_classes"])
        except ValueError as e:  # a backbone without strides 4..32
            raise DenseModelError(f"cannot build a {self.recipe.detector} on {spec.blueprint}: {e}") from None

    def init_target(self, model: nn.Module) -> nn.Module:
        return unwrap(model).backbone.body.body

    def build_dataset(self, data_dir: Path, split: Split, model: nn.Module, info: dict[str, Any]) -> Dataset:
        ds = self._dataset(data_dir, split)
        if split == "val":
            if ds.cat_ids != info["category_ids"]:
                raise DataError(f"{data_dir}: val categories {ds.cat_ids} differ from train's {info['category_ids']}.")
            ds.transforms = DetectionTransform(0.0)
            return SkipUnreadable(ds, "leave_out")
        ds.transforms = DetectionTransform(self.recipe.flip_prob)
        self._set_warmup(len(ds))
        return SkipUnreadable(ds, "substitute")

    def _set_warmup(self, n_images: int) -> None:
        """Express ``warmup_iters`` in epochs (the engine's unit) now that the epoch length is known."""
        r = self.recipe
        updates = max(1, n_images // world_size() // r.batch_size // r.accum_steps)
        if r.warmup_iters and r.warmup_epochs == 0:
            r.warmup_epochs = min(r.warmup_iters / updates, float(r.epochs))

    def collate_fn(self, split: Split):
        """Batches ``(images, targets, skipped)``; ``skipped`` counts unreadable images (left out in evaluation)."""
        return leave_out_collate(collate_detection)

    def end_of_epoch(self, ctx) -> dict[str, float]:
        return self._skips.end_of_epoch(ctx)

    # -- training -------------------------------------------------------------------------------
    def training_loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        images, targets = batch[0], batch[1]
        self._skips.add(batch)
        losses = model(images, targets)
        loss = sum(losses.values())
        return loss, {k: v.detach() for k, v in losses.items()}  # on the device: summed there per epoch

    def batch_size_of(self, batch: Any) -> int:
        return len(batch[0])

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DataLoader, ctx) -> dict[str, float]:
        ds = loader.dataset
        net = unwrap(model)
        was_training = net.training
        net.eval()
        results: list[dict] = []
        image_ids: list[int] = []
        skipped = torch.zeros(1, dtype=torch.float64, device=ctx.device)
        for batch in loader:
            images, targets = batch[0], batch[1]
            skipped += float(batch[2]) if len(batch) > 2 else 0.0
            if not images:  # every image of the batch was unreadable
                continue
            images = [im.to(ctx.device, non_blocking=True) for im in images]
            with self.autocast(ctx.device):
                preds = net(images)
            for pred, tgt in zip(preds, targets):
                img_id = int(tgt["image_id"])
                image_ids.append(img_id)
                results.extend(detections_to_coco(img_id, {k: v.float() for k, v in pred.items()}, ds.label_to_cat))
        net.train(was_training)
        ctx.all_reduce_sum(skipped)
        parts = ctx.all_gather_object((image_ids, results))
        evaluator = CocoEvaluator(ds.coco, ("bbox", "segm") if self.recipe.detector == "mask_rcnn" else ("bbox",))
        for ids, res in parts:
            evaluator.update(ids, res)
        summary = evaluator.summarize()
        metrics: dict[str, float] = {}
        for iou_type, s in summary.items():
            for name in STAT_NAMES:  # percent, as the papers; COCOeval's -1 ("no such objects") kept
                v = s[name]
                metrics[f"{iou_type}_{name}"] = v * 100 if v >= 0 else -1.0
        metrics["detections"] = float(len(evaluator.results))
        metrics["val_images"] = float(len(evaluator.image_ids))
        metrics["val_skipped"] = float(skipped)
        return {k: (v if not math.isnan(v) else -1.0) for k, v in metrics.items()}

    # -- inference ------------------------------------------------------------------------------
    def predict(self, model: nn.Module, files: list[Path], names: list[str], device: torch.device,
                options: PredictOptions):
        """Per image: its boxes scoring at least ``options.score_threshold``, drawn, and their list."""
        from spmkit.data.coco import read_rgb

        for f in files:
            drawn, summary = detect_one(model, read_rgb(f), names, options.score_threshold, device)
            yield summary, drawn
