"""The interface the checks use: ``spmkit train/eval --task detection`` and ``spmkit predict``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.data.synthetic_dense import make_shapes_coco

runner = CliRunner()
SMALL = ["--set", "min_size=64", "--set", "max_size=96", "--set", "fpn_channels=32", "--set", "box_head_dim=64",
         "--set", "mask_head_dim=16", "--set",
         "detector_kwargs={rpn_pre_nms_top_n_train: 100, rpn_post_nms_top_n_train: 50, box_batch_size_per_image: 32}"]



@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_coco(tmp_path_factory.mktemp("shapes"), n_train=4, n_val=2, size=64, seed=0)


def test_train_eval_predict(shapes, tmp_path):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--task", "detection", "--blueprint", "tiny_pvt", "--data", str(shapes),
                              "--output", str(run), "--epochs", "1", "--batch-size", "2", "--workers", "0",
                              "--devices", "cpu", *SMALL])
    assert res.exit_code == 0, res.output
    assert (run / "last.pt").exists()

    res = runner.invoke(app, ["eval", "--task", "detection", "--checkpoint", str(run / "last.pt"),
                              "--data", str(shapes), "--json", "--devices", "cpu"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    for key in ("bbox_AP", "segm_AP", "bbox_AP50", "segm_AR100"):
        assert key in m and -1 <= m[key] <= 100

    image = shapes / "val2017" / "000000001001.jpg"
    out = tmp_path / "pred.png"
    res = runner.invoke(app, ["predict", str(image), "--checkpoint", str(run / "last.pt"), "-o", str(out),
                              "--score-threshold", "0", "--json", "--devices", "cpu"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["task"] == "detection" and summary["count"] == len(summary["detections"]) > 0
    assert {d["class"] for d in summary["detections"]} <= {"rectangle", "ellipse", "triangle"}
    drawn = np.asarray(Image.open(out))
    assert drawn.shape == (64, 64, 3) and not np.array_equal(drawn, np.asarray(Image.open(image).convert("RGB")))


def test_bad_recipe_and_data_exit_2(shapes, tmp_path):
    res = runner.invoke(app, ["train", "--task", "detection", "--blueprint", "tiny_pvt", "--data", str(shapes),
                              "--output", str(tmp_path / "r"), "--devices", "cpu", "--set", "detector=yolo"])
    assert res.exit_code == 2 and "detector" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "--task", "detection", "--blueprint", "tiny_pvt", "--data", str(shapes),
                              "--output", str(tmp_path / "r"), "--devices", "cpu", "--detector", "yolo"])
    assert res.exit_code == 2 and "yolo" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", "--blueprint", "tiny_pvt", "--data", str(shapes),
                              "--output", str(tmp_path / "r"), "--devices", "cpu", "--detector", "retinanet"])
    assert res.exit_code == 2 and "detector" in res.output  # classification has no detector
    res = runner.invoke(app, ["train", "--task", "detection", "--blueprint", "tiny_pvt", "--data", str(tmp_path),
                              "--output", str(tmp_path / "r2"), "--devices", "cpu"])
    assert res.exit_code == 2 and "instances_train2017.json" in res.output
