"""Detection through the engine: generated COCO-layout shapes, a few steps, COCOeval, recipe defaults."""

from __future__ import annotations

import pytest

from spmkit.data.synthetic_dense import make_shapes_coco
from spmkit.tasks.recipe import load_recipe
from spmkit.errors import SpmkitError
from spmkit.tasks.detection import DetectionRecipe, DetectionTask

SMALL = ["batch_size=2", "workers=0", "min_size=64", "max_size=96", "fpn_channels=32", "box_head_dim=64",
         "mask_head_dim=16", "detector_kwargs={rpn_pre_nms_top_n_train: 100, rpn_post_nms_top_n_train: 50, "
         "box_batch_size_per_image: 32}"]

BACKBONE = "tiny_pvt"  # a tiny spmkit blueprint (blueprints/tiny/)



@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_coco(tmp_path_factory.mktemp("shapes"), n_train=6, n_val=3, size=64, seed=0)


def test_1x_recipe_defaults():
    r = DetectionRecipe()
    assert (r.epochs, r.decay_milestones, r.decay_rate, r.sched) == (12, [8, 11], 0.1, "multistep")
    assert (r.opt, r.lr, r.weight_decay) == ("adamw", 1e-4, 0.05)
    assert (r.min_size, r.max_size, r.flip_prob, r.detector) == (800, 1333, 0.5, "mask_rcnn")
    assert r.batch_size * 8 == 16  # per process; 8 GPUs give the papers' batch 16


def test_warmup_iters_become_epochs(shapes):
    t = DetectionTask(load_recipe(DetectionRecipe, None, SMALL + ["warmup_iters=6"]))
    info = t.data_info(shapes)
    assert info["category_ids"] == [3, 7, 11] and info["num_classes"] == 3
    t.build_dataset(shapes, "train", None, info)
    assert t.recipe.warmup_epochs == pytest.approx(2.0)  # 6 steps / (6 images / batch 2)


def test_retinanet_trains_and_evaluates(shapes, tmp_path):
    detector = "retinanet"
    from spmkit.infer.evaluate import evaluate
    from spmkit.train.trainer import TrainConfig, train
    from spmkit.tasks.base import ModelSpec

    out = tmp_path / "run"
    rows = train(TrainConfig(model=ModelSpec(BACKBONE), data=shapes, output=out, task="detection",
                             overrides=SMALL + ["epochs=1", f"detector={detector}", "detector_kwargs={}"],
                             device="cpu"))
    assert rows[-1]["step"] == 3
    assert "train_loss" in rows[-1] and "bbox_AP" in rows[-1]
    assert "segm_AP" not in rows[-1]
    assert (out / "last.pt").exists()
    m = evaluate(data=shapes, checkpoint=out / "last.pt")
    assert m["images"] == 3 and m["bbox_AP"] == pytest.approx(rows[-1]["bbox_AP"])


def test_bad_detector_kwargs_are_reported(shapes):
    from spmkit.tasks.base import ModelSpec

    t = DetectionTask(load_recipe(DetectionRecipe, None, ["detector_kwargs={no_such_arg: 1}"]))
    with pytest.raises(SpmkitError, match="detector_kwargs"):
        t.build_model(ModelSpec(BACKBONE), {"num_classes": 3})


@pytest.mark.parametrize("task_name", ["detection", "segmentation"])
def test_init_loads_classification_weights_into_the_backbone(tmp_path, task_name):
    import torch

    import spmkit
    from spmkit.registry import TASKS
    from spmkit.tasks.base import ModelSpec

    classifier = spmkit.create_model(BACKBONE)
    torch.save(classifier.state_dict(), tmp_path / "cls.pt")
    task_cls = TASKS.get(task_name)
    task = task_cls(load_recipe(task_cls.recipe_class, None, []))
    model = task.build_model(ModelSpec(BACKBONE), {"num_classes": 3})
    report = task.load_init_weights(model, tmp_path / "cls.pt")
    assert report["missing"] == [] and report["skipped"] == []
    assert report["unexpected"] and all(k.startswith("head.") for k in report["unexpected"])  # the classifier
    own = task.init_target(model).state_dict()
    for k, v in classifier.state_dict().items():
        if k in own:
            assert torch.equal(own[k], v), k


def test_no_weight_decay_on_norms_and_position_tables():
    from spmkit.train.optim import param_groups
    from spmkit.tasks.base import ModelSpec

    t = DetectionTask(load_recipe(DetectionRecipe, None, SMALL))
    model = t.build_model(ModelSpec("tiny_pvt"), {"num_classes": 3})
    decay = {n for g in param_groups(model, 0.05) if g["weight_decay"] > 0 for n in g["param_names"]}
    names = {n for n, _ in model.named_parameters()}
    pos = {n for n in names if "pos_embed" in n or "cls_token" in n}
    assert pos and not (pos & decay)  # position tables and the class token of the backbone
    assert not {n for n in decay if ".norm" in n or n.endswith(".bias")}
    assert "backbone.fpn.layer_blocks.0.0.weight" in decay and "roi_heads.box_head.fc6.weight" in decay
