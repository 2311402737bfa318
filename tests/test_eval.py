"""spmkit eval with a blueprint and (timm) weights instead of a run checkpoint; recipe files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from imagefolder_util import make_imagefolder
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.tasks.recipe import RecipeError, load_recipe
from spmkit.tasks.classification import ClassificationRecipe



def test_eval_blueprint_with_timm_weights(tmp_path: Path) -> None:
    from timm.models.pvt_v2 import PyramidVisionTransformerV2

    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=1, val_per_class=4)
    ref = PyramidVisionTransformerV2(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 2, 4),
                                     sr_ratios=(4, 2, 1, 1), mlp_ratios=(2, 2, 2, 2), num_classes=3).eval()
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    args = ["eval", "--blueprint", "tiny_pvt_v2", "--weights", str(tmp_path / "timm.pth"), "--data", str(data),
            "--json", "--workers", "0", "--set", "crop_pct=1.0"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    # the same images through timm's own model give the same top-1
    from spmkit.data.imagenet import ImageFolderDataset
    from timm.data import create_transform

    tf = create_transform((3, 64, 64), crop_pct=1.0, interpolation="bicubic")
    ds = ImageFolderDataset(data, "val", ["class_00", "class_01", "class_02"], transform=tf)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    with torch.no_grad():
        top1 = (ref(x).argmax(1) == y).float().mean().item() * 100
    assert out["top1"] == pytest.approx(top1) and out["images"] == 12


def test_eval_with_weights_missing_parameters_is_an_error(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=1, val_per_class=1)
    torch.save({"stem.proj.weight": torch.zeros(16, 3, 7, 7)}, tmp_path / "partial.pth")
    res = CliRunner().invoke(app, ["eval", "--blueprint", "tiny_pvt_v2", "--weights", str(tmp_path / "partial.pth"),
                                   "--data", str(data), "--workers", "0"])
    assert res.exit_code == 2 and "unset" in res.output


def test_builtin_recipes_and_defaults_are_the_paper_recipe() -> None:
    r = load_recipe(ClassificationRecipe, "imagenet_pvt")
    assert r == ClassificationRecipe()
    assert (r.epochs, r.opt, r.weight_decay, r.warmup_epochs, r.smoothing, r.mixup, r.cutmix, r.reprob) == (
        300, "adamw", 0.05, 5, 0.1, 0.8, 1.0, 0.25)
    assert r.resolved_lr(1024) == pytest.approx(1e-3) and r.auto_augment.startswith("rand-m9")
    assert load_recipe(ClassificationRecipe, "imagenet_swin").clip_grad == 5.0
    with pytest.raises(RecipeError, match="neither a file nor a builtin"):
        load_recipe(ClassificationRecipe, "no_such_recipe")
