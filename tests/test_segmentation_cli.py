"""The interface the checks use: ``spmkit train/eval --task segmentation`` and ``spmkit predict``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.data.synthetic_dense import make_shapes_ade20k
from spmkit.io.output_paths import MANIFEST

runner = CliRunner()
SMALL = ["--set", "scale=[96,64]", "--set", "crop_size=[64,64]", "--set", "fpn_channels=16",
         "--set", "head_channels=16"]



@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_shapes_ade20k(tmp_path_factory.mktemp("ade"), n_train=4, n_val=2, size=72, seed=0).parent


def test_train_eval_predict(scenes, tmp_path):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--task", "segmentation", "--blueprint", "tiny_swin", "--data", str(scenes),
                              "--output", str(run), "--batch-size", "2", "--workers", "0", "--devices", "cpu",
                              "--set", "iters=4", "--set", "epochs=2", *SMALL])
    assert res.exit_code == 0, res.output
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    assert [r["step"] for r in rows] == [2, 4] and "mIoU" in rows[-1]

    res = runner.invoke(app, ["eval", "--task", "segmentation", "--checkpoint", str(run / "last.pt"),
                              "--data", str(scenes), "--json", "--devices", "cpu"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert 0 <= m["mIoU"] <= 100 and 0 <= m["pixel_acc"] <= 100
    assert m["mIoU"] == pytest.approx(rows[-1]["mIoU"])

    res = runner.invoke(app, ["eval", "--checkpoint", str(run / "last.pt"), "--data", str(scenes), "--json",
                              "--devices", "cpu", "--set", "inference=slide", "--set", "crop_size=[32,32]",
                              "--set", "slide_stride=[16,16]"])
    assert res.exit_code == 0, res.output
    assert 0 <= json.loads(res.stdout)["mIoU"] <= 100

    image = next((scenes / "ADEChallengeData2016" / "images" / "validation").glob("*.jpg"))
    out = tmp_path / "pred.png"
    res = runner.invoke(app, ["predict", str(image), "--checkpoint", str(run / "last.pt"), "-o", str(out),
                              "--json", "--devices", "cpu"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["task"] == "segmentation" and sum(summary["pixel_fraction"].values()) <= 1.0 + 1e-6
    drawn = np.asarray(Image.open(out))
    assert drawn.shape[0] >= 72 and drawn.shape[1] > 72 and drawn.shape[2] == 3  # the map, a legend on its right
    assert not np.array_equal(drawn[:72, :72], np.asarray(Image.open(image).convert("RGB")))  # the map blended in

    folder = image.parent  # a folder: one drawn PNG per image in -o FOLDER
    res = runner.invoke(app, ["predict", str(folder), "--checkpoint", str(run / "last.pt"), "-o",
                              str(tmp_path / "preds"), "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    images = sorted(folder.glob("*.jpg"))
    assert [p["image"] for p in doc["predictions"]] == [str(i) for i in images] and len(images) > 1
    written = sorted(p.name for p in (tmp_path / "preds").iterdir() if p.name != MANIFEST)  # + spmkit's record
    assert written == sorted(f"{i.stem}_pred.png" for i in images)


def test_errors_exit_2_without_traceback(tmp_path):
    res = runner.invoke(app, ["train", "--task", "segmentation", "--blueprint", "tiny_swin", "--data",
                              str(tmp_path), "--output", str(tmp_path / "r"), "--devices", "cpu"])
    assert res.exit_code == 2 and "not an ADE20K folder" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["predict", str(tmp_path / "x.jpg"), "--checkpoint", str(tmp_path / "none.pt")])
    assert res.exit_code == 2 and "does not exist" in res.output
