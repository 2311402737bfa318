"""Optimizer groups (no decay on norms / biases / no_weight_decay; param_lr_scales), schedule, init weights."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spmkit.convert.init_weights import load_init_weights
from spmkit.train.optim import create_optimizer, create_scheduler, param_groups
from spmkit.tasks.recipe import RecipeError, TrainRecipe, load_recipe



class Toy(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, 4, 8))
        self.proj = nn.Linear(8, 8)
        self.offset = nn.Linear(8, 2)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, classes)

    def no_weight_decay(self) -> set[str]:
        return {"pos"}

    def param_lr_scales(self) -> dict[str, float]:
        return {"offset.weight": 0.01, "offset.bias": 0.01}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.proj(x + self.pos) + self.offset(x).sum(-1, keepdim=True))).mean(1)


def test_param_groups_split_decay_and_lr_scale() -> None:
    groups = param_groups(Toy(), 0.05)
    by_name = {n: (g["weight_decay"], g["lr_scale"]) for g in groups for n in g["param_names"]}
    assert by_name["proj.weight"] == (0.05, 1.0) and by_name["head.weight"] == (0.05, 1.0)
    assert by_name["proj.bias"] == (0.0, 1.0) and by_name["norm.weight"] == (0.0, 1.0)
    assert by_name["pos"] == (0.0, 1.0)  # 3-D but named by no_weight_decay
    assert by_name["offset.weight"] == (0.05, 0.01) and by_name["offset.bias"] == (0.0, 0.01)


def test_schedule_warmup_cosine_and_lr_scale_applied() -> None:
    recipe = TrainRecipe(epochs=10, warmup_epochs=2, warmup_lr=0.0, min_lr=0.0, lr=1e-3)
    model = Toy()
    opt = create_optimizer(model, recipe, recipe.resolved_lr(64))
    assert type(opt).__name__ == "AdamW"
    sched = create_scheduler(opt, recipe, updates_per_epoch=5)

    def lrs(step: int) -> dict[float, float]:
        sched.step_update(num_updates=step)
        return {g["lr_scale"]: g["lr"] for g in opt.param_groups}

    assert lrs(5)[1.0] == pytest.approx(0.5e-3)  # half-way through the 10-update warm-up
    t = 30 / 50  # timm / DeiT: the cosine spans all 50 updates, warm-up overlaps its start
    assert lrs(30)[1.0] == pytest.approx(0.5e-3 * (1 + math.cos(math.pi * t)))
    assert lrs(30)[0.01] == pytest.approx(0.01 * lrs(30)[1.0])


def test_lr_scales_with_global_batch_and_recipe_overrides(tmp_path) -> None:
    assert TrainRecipe().resolved_lr(1024) == pytest.approx(1e-3)
    f = tmp_path / "r.yaml"
    f.write_text("epochs: 5\nopt: sgd\n")
    r = load_recipe(TrainRecipe, f, ["epochs=7", "clip_grad=1.0"])
    assert (r.epochs, r.opt, r.clip_grad) == (7, "sgd", 1.0)
    with pytest.raises(RecipeError, match="warmup_epochs"):
        load_recipe(TrainRecipe, None, ["warmup_epochs=-1"])


def test_init_weights_non_strict_reports_missing_and_skips_other_heads(tmp_path) -> None:
    src = Toy(classes=10)
    sd = {k: v for k, v in src.state_dict().items() if not k.startswith("offset.")}  # a source without "SPM" layers
    path = tmp_path / "w.pt"
    torch.save({"state_dict": sd}, path)
    dst = Toy(classes=4)
    before = dst.offset.weight.clone()
    report = load_init_weights(dst, path)
    assert sorted(report["missing"]) == ["offset.bias", "offset.weight"]
    assert sorted(report["skipped"]) == ["head.bias", "head.weight"]
    assert torch.equal(dst.proj.weight, src.proj.weight) and torch.equal(dst.offset.weight, before)


def test_init_from_timm_pvt_v2_weights_through_the_converter(tmp_path) -> None:
    from timm.models.pvt_v2 import PyramidVisionTransformerV2

    from spmkit.tasks.base import ModelSpec
    from spmkit.tasks.classification import ClassificationRecipe, ClassificationTask

    ref = PyramidVisionTransformerV2(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 2, 4),
                                     sr_ratios=(4, 2, 1, 1), mlp_ratios=(2, 2, 2, 2), num_classes=10)
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "timm.pth")
    task = ClassificationTask(ClassificationRecipe())
    model = task.build_model(ModelSpec("tiny_pvt_v2"), {"num_classes": 3, "classes": ["a", "b", "c"]})
    report = task.load_init_weights(model, tmp_path / "timm.pth")
    assert sorted(report["skipped"]) == ["head.fc.bias", "head.fc.weight"] and not report["missing"]
    torch.testing.assert_close(model.stem.proj.weight, ref.patch_embed.proj.weight)


def test_sync_bn_converts_batchnorm_for_multi_process_cuda_only() -> None:
    from spmkit.train.distributed import DistContext, sync_batchnorm
    from spmkit.tasks.recipe import load_recipe
    from spmkit.tasks.classification import ClassificationRecipe
    from spmkit.tasks.detection import DetectionRecipe
    from spmkit.tasks.segmentation import SegmentationRecipe

    def model() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))

    m = model()
    params = [id(p) for p in m.parameters()]
    keys = list(m.state_dict())
    assert sync_batchnorm(m, DistContext(world_size=1), True) is None  # one process: nothing to sync
    assert sync_batchnorm(m, DistContext(world_size=2), False) is None  # the recipe says no
    note = sync_batchnorm(m, DistContext(world_size=2, device=torch.device("cpu")), True)
    assert "needs CUDA" in note and not any(isinstance(x, nn.SyncBatchNorm) for x in m.modules())
    note = sync_batchnorm(m, DistContext(world_size=2, device=torch.device("cuda", 0)), True)
    assert "2 BatchNorm layers synchronised across 2 processes" in note
    assert sum(isinstance(x, nn.SyncBatchNorm) for x in m.modules()) == 2
    assert [id(p) for p in m.parameters()] == params and list(m.state_dict()) == keys  # optimizer, EMA, checkpoints unaffected
    assert not ClassificationRecipe().sync_bn and DetectionRecipe().sync_bn and SegmentationRecipe().sync_bn
    assert load_recipe(ClassificationRecipe, "imagenet_groupmixformer").sync_bn
