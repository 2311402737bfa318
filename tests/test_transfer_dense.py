"""Issue 19: dense transfer. Detection/segmentation ``--init`` from a classification checkpoint of another
size resizes its tables; ``spmkit convert --part backbone`` reads mmdetection/mmsegmentation releases."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import spmkit
from spmkit.cli.app import app
from spmkit.tasks.base import ModelSpec

LAYOUTS = Path(__file__).parent / "data" / "official_layouts"
runner = CliRunner()


@pytest.mark.parametrize("task_name", ["detection", "segmentation"])
def test_dense_init_from_a_classification_checkpoint_of_another_size(task_name: str, tmp_path: Path) -> None:
    from spmkit.convert.resize import resize_tables
    from spmkit.tasks.detection import DetectionRecipe, DetectionTask
    from spmkit.tasks.segmentation import SegmentationRecipe, SegmentationTask

    src = spmkit.create_model("tiny_lit")  # 64 px: stage-3 relative table 7x7 map, stage-4 position embedding
    path = tmp_path / "cls64.pth"
    torch.save(src.state_dict(), path)
    if task_name == "detection":
        task = DetectionTask(DetectionRecipe())
        info = {"num_classes": 2, "category_ids": [1, 2], "classes": ["a", "b"]}
    else:
        task = SegmentationTask(SegmentationRecipe())
        info = {"num_classes": 3, "classes": ["a", "b", "c"]}
    model = task.build_model(ModelSpec("tiny_lit", ("img_size=128",)), info)
    report = task.load_init_weights(model, path)
    assert sorted(report["resized"]) == ["stages.2.blocks.0.attn.relative_position_bias_table",
                                         "stages.3.pos_embed.weight"]
    assert not any("pos_embed" in k or "relative_position" in k for k in report["skipped"] + report["missing"])
    body = task.init_target(model)
    expected, _ = resize_tables(body, src.state_dict())
    for k in report["resized"]:
        assert torch.equal(body.state_dict()[k], expected[k])


def _layout_keys(name: str) -> dict[str, list]:
    with gzip.open(LAYOUTS / f"{name}.json.gz", "rt") as f:
        return json.load(f)["keys"]


def _mmdet_file(path: Path, drop: str | None = None) -> dict[str, torch.Tensor]:
    """An mmdetection checkpoint of whai362/PVT ``detection/pvt_v2.py`` (the classification layout without
    its classifier) with an FPN neck and Mask R-CNN heads."""
    torch.manual_seed(0)
    sd = {f"backbone.{k}": torch.randn(s) for k, (s, _) in _layout_keys("pvt_v2_b0").items()
          if not k.startswith("head.") and k != drop}
    sd |= {"neck.lateral_convs.0.conv.weight": torch.randn(8, 32, 1, 1), "neck.lateral_convs.0.conv.bias": torch.randn(8),
           "rpn_head.rpn_conv.weight": torch.randn(8, 8, 3, 3),
           "roi_head.bbox_head.fc_cls.weight": torch.randn(81, 16), "roi_head.bbox_head.fc_cls.bias": torch.randn(81)}
    torch.save({"meta": {"epoch": 12, "CLASSES": ["person"]}, "state_dict": sd}, path)
    return sd


def test_convert_part_backbone_of_an_mmdetection_release(tmp_path: Path) -> None:
    sd = _mmdet_file(tmp_path / "mask_rcnn_pvt_v2_b0.pth")
    out = tmp_path / "backbone.pt"
    res = runner.invoke(app, ["convert", str(tmp_path / "mask_rcnn_pvt_v2_b0.pth"), "--part", "backbone",
                              "-b", "pvt_v2_b0", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "5 other tensors dropped (neck 2, roi_head 2, rpn_head 1)" in res.output
    assert "layout pvt_v2" in res.output and "0 unused" in res.output
    got = torch.load(out, weights_only=True)
    assert torch.equal(got["stages.0.blocks.0.attn.q.weight"], sd["backbone.block1.0.attn.q.weight"])
    assert torch.equal(got["stages.3.norm.weight"], sd["backbone.norm4.weight"])
    model = spmkit.create_model("pvt_v2_b0", num_classes=0)
    spmkit.convert.load_weights(model, {k: v for k, v in got.items() if not k.startswith("head.")}, strict=True)


def test_convert_part_backbone_is_strict(tmp_path: Path) -> None:
    _mmdet_file(tmp_path / "short.pth", drop="block2.0.attn.q.weight")
    res = runner.invoke(app, ["convert", str(tmp_path / "short.pth"), "--part", "backbone", "-b", "pvt_v2_b0",
                              "-o", str(tmp_path / "o.pt")])
    assert res.exit_code == 2 and "stages.1.blocks.0.attn.q.weight" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "o.pt").exists()
    torch.save(spmkit.create_model("tiny_pvt").state_dict(), tmp_path / "cls.pth")
    res = runner.invoke(app, ["convert", str(tmp_path / "cls.pth"), "--part", "backbone", "-b", "tiny_pvt",
                              "-o", str(tmp_path / "o.pt")])
    assert res.exit_code == 2 and "no 'backbone.*' keys" in res.output
    res = runner.invoke(app, ["convert", str(tmp_path / "short.pth"), "--part", "neck", "-b", "pvt_v2_b0",
                              "-o", str(tmp_path / "o.pt")])
    assert res.exit_code == 2 and "known parts: backbone" in res.output


def test_convert_part_backbone_of_a_pvt_v1_detection_release_needs_no_strict(tmp_path: Path) -> None:
    """whai362/PVT ``detection/pvt.py`` keeps no class token, final norm or classifier: strict names them;
    ``--no-strict`` converts the rest and reports them."""
    keys = {k: s for k, (s, _) in _layout_keys("pvt_tiny").items()
            if not k.startswith(("head.", "norm.")) and k != "cls_token"}
    sd = {f"backbone.{k}": torch.randn(s) for k, s in keys.items()} | {"neck.fpn_convs.0.conv.weight": torch.randn(4)}
    torch.save({"state_dict": sd}, tmp_path / "retinanet_pvt_t.pth")
    args = ["convert", str(tmp_path / "retinanet_pvt_t.pth"), "--part", "backbone", "-b", "pvt_tiny",
            "-o", str(tmp_path / "o.pt")]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "stages.3.cls_token" in res.output and "norm.weight" in res.output
    res = runner.invoke(app, [*args, "--no-strict"])
    assert res.exit_code == 0, res.output
    assert "3 freshly initialised, 0 unused, 0 skipped" in res.output and "1 other tensors dropped (neck 1)" in res.output
