"""No metric from zero samples (issue 22, class 1): a val split with no readable sample is an input error in
``spmkit eval`` and ``spmkit train`` for every task; nothing is scored, written or chosen as best."""

from __future__ import annotations

from pathlib import Path

import pytest
from imagefolder_util import make_imagefolder, train_args
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.data.synthetic_dense import make_shapes_ade20k, make_shapes_coco
from spmkit.tasks.scored import NoSamplesError, require_scored
from spmkit.registry import TASKS

runner = CliRunner()
DET_SMALL = ["--set", "min_size=64", "--set", "max_size=96", "--set", "fpn_channels=32", "--set", "box_head_dim=64",
             "--set", "mask_head_dim=16", "--set", "detector=retinanet"]
SEG_SMALL = ["--set", "scale=[96,64]", "--set", "crop_size=[64,64]", "--set", "fpn_channels=16",
             "--set", "head_channels=16"]


def _corrupt_all(files: list[Path]) -> int:
    assert files
    for p in files:
        p.write_bytes(b"\x00 not an image " * 8)
    return len(files)


def _classification(root: Path) -> tuple[Path, int, list[str]]:
    data = make_imagefolder(root, classes=2, train_per_class=2, val_per_class=2)
    n = _corrupt_all(sorted(p for p in (data / "val").rglob("*") if p.is_file()))
    return data, n, ["--blueprint", "tiny_pvt", "--set", "img_size=32"]


def _detection(root: Path) -> tuple[Path, int, list[str]]:
    data = make_shapes_coco(root, n_train=2, n_val=2, size=64, seed=0)
    n = _corrupt_all(sorted((data / "val2017").glob("*.jpg")))
    return data, n, ["--task", "detection", "--blueprint", "tiny_pvt", *DET_SMALL]


def _segmentation(root: Path) -> tuple[Path, int, list[str]]:
    base = make_shapes_ade20k(root / "ade", n_train=2, n_val=2, size=64, seed=0)
    n = _corrupt_all(sorted((base / "images" / "validation").glob("*.jpg")))
    return base.parent, n, ["--task", "segmentation", "--blueprint", "tiny_swin", *SEG_SMALL]


MAKERS = {"classification": _classification, "detection": _detection, "segmentation": _segmentation}


def test_every_registered_task_is_covered():
    assert set(TASKS.names()) <= set(MAKERS), "a new task needs a zero-sample case here"


def _refused(res, n: int) -> str:
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert "Traceback" not in out and "\n\n" not in out
    assert "the val split has no readable sample" in out and f"all {n} of its files are unreadable" in out, out
    assert "top1" not in out and "mAP" not in out and "mIoU" not in out
    return out


@pytest.mark.parametrize("task", sorted(MAKERS))
def test_eval_refuses_a_split_with_no_readable_sample(task: str, tmp_path: Path):
    data, n, args = MAKERS[task](tmp_path / "data")
    _refused(runner.invoke(app, ["eval", "--data", str(data), "--workers", "0", "--devices", "cpu", *args]), n)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_train_stops_before_writing_metrics_or_best(workers: str, tmp_path: Path):
    data, n, _ = _classification(tmp_path / "data")
    run = tmp_path / "run"
    args = train_args(data, run, 1, 4)
    args[args.index("--workers") + 1] = workers
    _refused(runner.invoke(app, args), n)
    assert not (run / "best.pt").exists()
    metrics = run / "metrics.jsonl"
    assert not metrics.exists() or "top1" not in metrics.read_text()
    import multiprocessing

    # the failed run's persistent loader workers (they ignore SIGTERM) ended with it, not at some later
    # garbage collection: left over, they would hold up the interpreter's exit
    assert not [p for p in multiprocessing.active_children() if p.daemon]


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_dense_train_refuses_too(task: str, tmp_path: Path):
    data, n, args = MAKERS[task](tmp_path / "data")
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--data", str(data), "--output", str(run), "--epochs", "1", "--batch-size",
                              "2", "--workers", "0", "--devices", "cpu", *args,
                              *(["--set", "iters=1"] if task == "segmentation" else [])])
    _refused(res, n)
    assert not (run / "best.pt").exists()


def test_require_scored_passes_partial_and_refuses_none():
    require_scored({"val_images": 1.0, "val_skipped": 5.0})
    require_scored({"top1": 3.0})  # a task that does not count is not judged here
    with pytest.raises(NoSamplesError, match="holds no sample"):
        require_scored({"val_images": 0.0, "val_skipped": 0.0})
