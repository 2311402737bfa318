"""Segmentation through the engine: generated ADE20K-layout scenes, iteration epochs, mIoU."""

from __future__ import annotations

import pytest

from spmkit.data.synthetic_dense import make_shapes_ade20k
from spmkit.tasks.recipe import load_recipe
from spmkit.tasks.segmentation import SegmentationRecipe, SegmentationTask

SMALL = ["batch_size=2", "workers=0", "scale=[96,64]", "crop_size=[64,64]", "fpn_channels=16", "head_channels=16"]

BACKBONE = "tiny_swin"  # a tiny spmkit blueprint (blueprints/tiny/)



@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_shapes_ade20k(tmp_path_factory.mktemp("ade"), n_train=4, n_val=2, size=72, seed=0).parent


def test_ade20k_recipe_defaults():
    r = SegmentationRecipe()
    assert (r.iters, r.sched, r.decay_rate, r.min_lr, r.lr, r.opt) == (40000, "poly", 0.9, 0.0, 2e-4, "adamw")
    assert (r.crop_size, r.scale, r.head, r.inference) == ((512, 512), (2048, 512), "semantic_fpn", "whole")


def test_iteration_epochs(scenes):
    t = SegmentationTask(load_recipe(SegmentationRecipe, None, SMALL + ["iters=10", "epochs=2"]))
    info = t.data_info(scenes)
    assert info == {"num_classes": 4, "classes": ["background", "rectangle", "ellipse", "triangle"]}
    ds = t.build_dataset(scenes, "train", None, info)
    assert len(ds) == 5 * 2  # 10 iterations in 2 epochs: 5 steps of 2 images each epoch
    image, label, skipped = ds[7]  # cycles over the 4 real images; skipped: 1 if it was unreadable
    assert skipped == 0
    assert image.shape == (3, 64, 64)


def test_upernet_trains_through_the_engine(scenes, tmp_path):
    from spmkit.train.trainer import TrainConfig, train
    from spmkit.tasks.base import ModelSpec

    rows = train(TrainConfig(model=ModelSpec(BACKBONE), data=scenes, output=tmp_path / "run", task="segmentation",
                             overrides=SMALL + ["iters=2", "epochs=1", "head=upernet"], device="cpu"))
    assert rows[-1]["step"] == 2
    assert rows[-1]["lr"] == pytest.approx(0.0)  # poly decays to min_lr 0 at the last iteration
    for key in ("mIoU", "pixel_acc", "mAcc", "IoU.background"):
        assert 0.0 <= rows[-1][key] <= 100.0


def test_backbone_without_strides_4_to_32_is_a_user_error():
    from spmkit.errors import SpmkitError
    from spmkit.tasks.base import ModelSpec

    task = SegmentationTask(SegmentationRecipe())
    with pytest.raises(SpmkitError, match=r"cannot build a semantic_fpn segmentor on timm:test_vit.*strides \[16"):
        task.build_model(ModelSpec("timm:test_vit"), {"num_classes": 3})


def test_epochs_without_iters_trains_by_epochs() -> None:
    """`--epochs N` alone means N passes over the data, as for the other tasks; the 40k-iteration recipe
    stays the default, and a stored recipe (both fields set) keeps what it had."""
    from spmkit.tasks.recipe import load_recipe
    from spmkit.tasks.segmentation import SegmentationRecipe

    default = load_recipe(SegmentationRecipe)
    assert (default.iters, default.epochs) == (40000, 10)
    by_epochs = load_recipe(SegmentationRecipe, overrides=["epochs=1"])
    assert (by_epochs.iters, by_epochs.epochs) == (None, 1)
    both = load_recipe(SegmentationRecipe, overrides=["epochs=4", "iters=400"])
    assert (both.iters, both.epochs) == (400, 4)
    stored = load_recipe(SegmentationRecipe, base=default.model_dump(mode="json"), overrides=["epochs=2"])
    assert (stored.iters, stored.epochs) == (40000, 2)
