"""What a batch log of ``spmkit train`` holds (stdout redirected to a file), RUN/train.log, epoch
checkpoints, and the plot panels of every task."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from imagefolder_util import make_imagefolder, train_args

from spmkit.train.reporter import format_evaluation
from spmkit.train.retention import epoch_checkpoints, prune_epoch_checkpoints


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("log")
    data = make_imagefolder(root / "data", classes=3, train_per_class=4, val_per_class=2)
    out = root / "run"
    args = train_args(data, out, 2, 4, "--set", "log_every_steps=2", "--set", "keep_last=1")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = root / "console.log"
    with open(log, "w") as f:  # stdout and stderr to a file, as under nohup / SLURM
        proc = subprocess.run([sys.executable, "-m", "spmkit", *args], stdout=f, stderr=subprocess.STDOUT, env=env,
                              timeout=300)
    text = log.read_text()
    assert proc.returncode == 0, text
    return out, text


def test_redirected_output_has_summary_step_and_eval_lines(logged_run: tuple[Path, str]) -> None:
    out, text = logged_run
    for fact in ("parameters  ", "MACs        ", "data        12 train / 6 val images",
                 "classes     3: class_00, class_01, class_02", "device      cpu, world size 1",
                 "log_every_steps: 20 -> 2", "epochs: 300 -> 2", f"run folder  {out.resolve()}"):
        assert fact in text, fact
    # 12 images, batch 4: 3 steps an epoch; a line at step 1, every 2nd step and at each epoch's end
    steps = [int(m) for m in re.findall(r"^step (\d+)/6 \| epoch", text, flags=re.M)]
    assert steps == [1, 2, 3, 4, 6]
    line = next(ln for ln in text.splitlines() if ln.startswith("step 4/6"))
    for part in ("epoch 2/2 batch 1/3", "loss ", "lr ", "img/s", "data ", "mem ", "ETA "):
        assert part in line, part
    assert len(re.findall(r"^eval epoch \d: top1 [\d.]+ \| top5 ", text, flags=re.M)) == 2
    assert text.index("parameters") < text.index("step 1/6")


def test_train_log_holds_what_the_console_showed(logged_run: tuple[Path, str]) -> None:
    out, text = logged_run
    log = (out / "train.log").read_text()
    assert log.strip() == text.strip()


def test_steps_jsonl_has_the_lr_of_every_step_and_the_logged_losses(logged_run: tuple[Path, str]) -> None:
    out, _ = logged_run
    rows = [json.loads(ln) for ln in (out / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and all(r["lr"] > 0 for r in rows)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 6]


def test_keep_last_keeps_the_newest_epoch_checkpoint_and_the_end_lists_sizes(logged_run: tuple[Path, str]) -> None:
    out, text = logged_run
    assert [p.name for p in epoch_checkpoints(out)] == ["epoch_0002.pt"]
    assert "removed epoch_0001.pt" in text
    for name in ("last.pt", "best.pt", "epoch_0002.pt"):
        assert re.search(rf"^  {re.escape(name)} +[\d.]+ (KiB|MiB)  {re.escape(str((out / name).resolve()))}",
                         text, flags=re.M), name


def test_prune_keeps_k_newest_by_epoch_number(tmp_path: Path) -> None:
    for e in (1, 2, 10, 9):
        (tmp_path / f"epoch_{e:04d}.pt").write_bytes(b"x")
    (tmp_path / "last.pt").write_bytes(b"x")
    removed = prune_epoch_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in removed) == ["epoch_0001.pt", "epoch_0002.pt"]
    assert [p.name for p in epoch_checkpoints(tmp_path)] == ["epoch_0009.pt", "epoch_0010.pt"]
    assert (tmp_path / "last.pt").exists() and prune_epoch_checkpoints(tmp_path, None) == []


def test_evaluation_line_shows_the_tasks_headline_metrics() -> None:
    det = {f"bbox_{k}": 10.0 + i for i, k in enumerate(("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1"))}
    det["detections"] = 7.0
    line = format_evaluation(3, det)
    assert line.startswith("eval epoch 3: bbox_AP 10 | bbox_AP50 11") and "AR1" not in line and "detections" not in line
    seg = {"mIoU": 41.5, "mAcc": 50.0, "pixel_acc": 70.0, "IoU.wall": 3.0}
    assert format_evaluation(1, seg) == "eval epoch 1: mIoU 41.5 | mAcc 50 | pixel_acc 70"


@pytest.mark.parametrize("task,keys,panel", [("detection", ("bbox_AP", "segm_AP"), "ap"),
                                             ("segmentation", ("mIoU", "mAcc"), "miou")])
def test_plot_draws_the_metrics_of_dense_tasks(tmp_path: Path, task: str, keys: tuple[str, ...], panel: str) -> None:
    from spmkit.train.curves import plot_run

    rows = [{"epoch": e, "step": 3 * e, "train_loss": 1.0 / e, "lr": 1e-3, **{k: 10.0 * e for k in keys}}
            for e in (1, 2)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "steps.jsonl").write_text("".join(json.dumps({"step": s, "epoch": 1, "lr": 1e-4 * s}) + "\n"
                                                  for s in range(1, 7)))
    names = sorted(p.name for p in plot_run(tmp_path))
    assert names == sorted(["loss.png", f"{panel}.png", "lr.png"])


def test_terminal_display_implements_the_reporter_protocol() -> None:
    import io

    from rich.console import Console

    from spmkit.cli.training_progress import RichReporter
    from spmkit.train.reporter import Reporter

    buf = io.StringIO()
    rep = RichReporter(Console(file=buf, force_terminal=True, width=160, color_system=None))
    for name in (n for n in dir(Reporter) if not n.startswith("_")):
        assert callable(getattr(rep, name, None)), name  # a method the trainer calls on a terminal
    rep.summary(["model       tiny [pvt]"])
    rep.start_epoch(1, 2, 3, 0)
    rep.step(1, 1.5, 1e-3, 10.0)
    rep.log_step({"step": 1, "total_steps": 6, "epoch": 1, "epochs": 2, "batch": 1, "batches": 3, "loss": 1.5,
                  "lr": 1e-3, "images_per_s": 10.0, "data_time_s": 0.01, "memory_mib": 100.0, "eta_s": 5.0})
    rep.evaluation(1, {"top1": 50.0, "top5": 100.0, "val_images": 6.0})
    rep.end_epoch({"epoch": 1, "train_loss": 1.2, "lr": 1e-3, "images_per_s": 10.0, "epoch_time_s": 2.0})
    rep.message("checkpoints:", level="info")
    rep.close()
    text = buf.getvalue()
    assert "model       tiny [pvt]" in text and "eval epoch 1: top1 50 | top5 100" in text
    assert "epoch 1 done: train_loss 1.2" in text and "checkpoints:" in text and "val_images" not in text
