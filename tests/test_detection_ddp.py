"""Two gloo processes (``--devices cpu --nproc 2``): detection predictions gathered for COCOeval and
segmentation confusion matrices summed give the same metrics as one process on the same checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spmkit.data.synthetic_dense import make_shapes_ade20k, make_shapes_coco

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, "-m", "spmkit", *args], env=env, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_two_processes_match_one(tmp_path, task):
    from spmkit.infer.evaluate import evaluate

    if task == "detection":
        data = make_shapes_coco(tmp_path / "data", n_train=8, n_val=5, size=64, seed=0)
        extra = ["--epochs", "1", "--set", "min_size=64", "--set", "max_size=96", "--set", "fpn_channels=16",
                 "--set", "box_head_dim=32", "--set", "mask_head_dim=8", "--set", "score_threshold=0.0"]
        key = "bbox_AP50"
    else:
        data = make_shapes_ade20k(tmp_path / "data", n_train=8, n_val=5, size=64, seed=0).parent
        extra = ["--set", "iters=2", "--set", "epochs=1", "--set", "scale=[96,64]", "--set", "crop_size=[64,64]",
                 "--set", "fpn_channels=16", "--set", "head_channels=16"]
        key = "mIoU"
    out = tmp_path / "run"
    _run(["train", "--task", task, "--blueprint", "tiny_pvt", "--data", str(data), "--output", str(out),
          "--devices", "cpu", "--nproc", "2", "--batch-size", "2", "--workers", "0", *extra])
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if l.strip()]
    assert rows[-1]["step"] == 2  # 8 images / (2 processes x 2) for detection; iters=2 for segmentation
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    single = evaluate(data=data, checkpoint=out / "last.pt", device="cpu")  # 5 val images, one process
    # 5 val images split 3 + 2 over the processes: the combined metric equals the one-process metric
    assert rows[-1][key] == pytest.approx(single[key], abs=1e-6)
    if task == "detection":  # with score_threshold 0 every image gives detections: all 5 images' were gathered
        assert rows[-1]["detections"] == single["detections"] > 0
    else:  # the confusion matrices of both shards were summed
        assert rows[-1]["pixel_acc"] == pytest.approx(single["pixel_acc"], abs=1e-6)
