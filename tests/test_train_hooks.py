"""The training loop's hooks: called at their points in order, and a stop requested by a hook writes
``last.pt`` at that exact step, from which ``--resume`` continues as if nothing had happened."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from imagefolder_util import TEST_MODEL, make_imagefolder, train_args
from typer.testing import CliRunner

import spmkit.tasks  # noqa: F401  (registers the tasks)
from spmkit.cli.app import app
from spmkit.train.hooks import Hook
from spmkit.train.trainer import TrainConfig, train
from spmkit.tasks.base import ModelSpec


class Recorder(Hook):
    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.stop_at = stop_at

    def before_train(self, loop) -> None:
        self.calls.append(("before_train",))

    def before_epoch(self, loop) -> None:
        self.calls.append(("before_epoch", loop.meter.epoch))

    def after_update(self, loop, step_row) -> None:
        self.calls.append(("after_update", step_row["step"]))
        if self.stop_at is not None and step_row["step"] == self.stop_at:
            loop.request_stop("test")

    def after_epoch(self, loop, row) -> None:
        # the standard hooks ran first: evaluation and the best metric are in the row
        self.calls.append(("after_epoch", row["epoch"], "top1" in row, "best_top1" in row))

    def after_train(self, loop) -> None:
        self.calls.append(("after_train", loop.stop_reason))


def _cfg(data: Path, out: Path, resume: str = "no") -> TrainConfig:
    overrides = ["epochs=2", "batch_size=4", "workers=0", "img_size=32", "warmup_epochs=0.5", "log_every_steps=1"]
    return TrainConfig(model=ModelSpec(TEST_MODEL), data=data, output=out, overrides=overrides, device="cpu",
                       resume=resume)


def _steps(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "steps.jsonl").read_text().splitlines()]


def test_hooks_are_called_in_order(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=4, val_per_class=2)
    rec = Recorder()
    train(_cfg(data, tmp_path / "run"), hooks=[rec])
    assert rec.calls == [("before_train",), ("before_epoch", 0), ("after_update", 1), ("after_update", 2),
                         ("after_update", 3), ("after_epoch", 1, True, True), ("before_epoch", 1),
                         ("after_update", 4), ("after_update", 5), ("after_update", 6),
                         ("after_epoch", 2, True, True), ("after_train", None)]


def test_stop_writes_last_at_that_step_and_resume_matches(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=4, val_per_class=2)
    full = tmp_path / "full"
    res = CliRunner().invoke(app, train_args(data, full, 2, 4, "--set", "warmup_epochs=0.5", "--device", "cpu"))
    assert res.exit_code == 0, res.output

    stopped = tmp_path / "stopped"
    rec = Recorder(stop_at=4)  # the first step of the second epoch
    rows = train(_cfg(data, stopped), hooks=[rec])
    assert [r["epoch"] for r in rows] == [1]
    assert rec.calls[-1] == ("after_train", "test")
    ck = torch.load(stopped / "last.pt", map_location="cpu", weights_only=True)
    assert (ck["epoch"], ck["batch_in_epoch"], ck["step"]) == (1, 1, 4)
    assert not (stopped / "epoch_0002.pt").exists()

    train(_cfg(data, stopped, resume="yes"))
    a, b = _steps(full), _steps(stopped)
    assert [s["step"] for s in b] == list(range(1, 7))
    assert [s["lr"] for s in b] == [s["lr"] for s in a]
    rows = [json.loads(ln) for ln in (stopped / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_best_and_epoch_files_are_copies_of_that_epochs_last(tmp_path: Path) -> None:
    """best.pt / epoch_NNNN.pt are byte copies of the epoch's last.pt (one serialisation per epoch), separate
    files (writing into one in place leaves the others), and load as checkpoints of that epoch."""
    import os

    from spmkit.io.checkpoint import load_checkpoint

    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=4, val_per_class=2)
    cfg = _cfg(data, tmp_path / "run")
    cfg.overrides = [*cfg.overrides, "epochs=1", "save_every_epochs=1"]
    train(cfg)
    run = tmp_path / "run"
    last, best, kept = run / "last.pt", run / "best.pt", run / "epoch_0001.pt"
    assert best.read_bytes() == last.read_bytes() == kept.read_bytes()
    assert len({os.stat(p).st_ino for p in (last, best, kept)}) == 3
    assert load_checkpoint(best)["epoch"] == 1 and load_checkpoint(kept)["epoch"] == 1
    best.write_bytes(b"user's own file")
    assert load_checkpoint(last)["epoch"] == 1


def test_next_epoch_started_before_evaluation_changes_nothing_but_timing(tmp_path: Path, monkeypatch) -> None:
    """With persistent workers the next epoch's batches are started before the epoch is evaluated and saved;
    the losses (augmentations from the worker seeds, dropout from the main generator) equal those of the
    same run that starts each epoch's loader afterwards."""
    from spmkit.train.loop import TrainLoop

    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=4, val_per_class=2)

    class Seen(Hook):
        def __init__(self) -> None:
            self.started: list[bool] = []

        def after_epoch(self, loop, row) -> None:
            self.started.append(loop._next_pass is not None)

    def run(out: Path) -> tuple[list[float], list[bool]]:
        cfg = _cfg(data, out)
        cfg.overrides = [*cfg.overrides, "epochs=3", "workers=1", "reprob=0.5", "mixup=0.5"]
        seen = Seen()
        train(cfg, hooks=[seen])
        return [s["loss"] for s in _steps(out)], seen.started

    early, started = run(tmp_path / "early")
    assert started == [True, True, False]  # no pass is started after the last epoch
    monkeypatch.setattr(TrainLoop, "_prefetch_next_epoch", lambda self, epoch: None)
    late, started = run(tmp_path / "late")
    assert started == [False, False, False]
    assert len(early) == 9 and early == late
