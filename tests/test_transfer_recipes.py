"""The builtin fine-tuning and transfer recipes hold the official settings they cite (in their comments)."""

from __future__ import annotations

import pytest

from spmkit.tasks.recipe import load_recipe
from spmkit.recipes import list_recipes
from spmkit.tasks.classification import ClassificationRecipe


def _load(name: str) -> ClassificationRecipe:
    return load_recipe(ClassificationRecipe, name)


def test_swin_384_finetune_is_swins_config() -> None:
    r = _load("finetune_384_swin")
    assert (r.img_size, r.crop_pct, r.epochs, r.warmup_epochs, r.weight_decay) == (384, 1.0, 30, 5, 1e-8)
    assert (r.batch_size, r.accum_steps, r.clip_grad, r.opt) == (64, 2, 5.0, "adamw")
    # BASE_LR 2e-5 scaled by 1024 / 512 at the reference batch (8 GPUs x 64 x 2 accumulation)
    assert r.resolved_lr(64 * 2 * 8) == pytest.approx(4e-5)
    assert (r.warmup_lr, r.min_lr) == (pytest.approx(4e-8), pytest.approx(4e-7))


def test_deit_384_finetune_is_deits_command() -> None:
    r = _load("finetune_384_deit")
    assert (r.img_size, r.epochs, r.weight_decay, r.min_lr, r.crop_pct) == (384, 30, 1e-8, 5e-6, 0.875)
    assert r.resolved_lr(32 * 16) == pytest.approx(5e-6)  # --lr 5e-6 at 2 nodes x 8 GPUs x 32
    assert (r.mixup, r.cutmix, r.smoothing) == (0.8, 1.0, 0.1)


def test_transfer_small_is_deits_transfer_setting() -> None:
    r = _load("transfer_small")
    assert (r.opt, r.weight_decay, r.reprob) == ("sgd", 1e-4, 0.0)
    assert r.resolved_lr(768) == pytest.approx(0.01)
    assert r.epochs < 300 and r.img_size is None


def test_every_builtin_recipe_loads() -> None:
    names = list_recipes()
    assert {"finetune_384_swin", "finetune_384_deit", "transfer_small"} <= set(names)
    for name in names:
        assert isinstance(_load(name), ClassificationRecipe)
