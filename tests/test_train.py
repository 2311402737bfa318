"""spmkit train / eval / plot on one process: files written, metrics, checkpoint contents, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from imagefolder_util import make_imagefolder, train_args
from typer.testing import CliRunner

from spmkit.cli.app import app

runner = CliRunner()



@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("data"), classes=3, train_per_class=8, val_per_class=4)


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    res = runner.invoke(app, train_args(data, out, 2, 4, "--set", "ema=true", "--set", "ema_decay=0.5"))
    assert res.exit_code == 0, res.output
    return out


def test_run_folder_has_metrics_and_checkpoints(run: Path) -> None:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert r["train_loss"] > 0 and 0 <= r["top1"] <= 100 and r["top5"] >= r["top1"]
        assert r["val_images"] == 12  # every val image once
    # 24 training images, batch 4 -> 6 optimizer steps an epoch
    assert [r["step"] for r in rows] == [6, 12]
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,") and len(csv_lines) == 3
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["epochs"] == 2 and recipe["batch_size"] == 4 and recipe["weight_decay"] == 0.05
    meta = json.loads((run / "run.json").read_text())
    assert meta["versions"]["torch"] == str(torch.__version__) and meta["world_size"] == 1
    assert list((run / "tb").glob("events.*"))
    steps = [json.loads(ln) for ln in (run / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 13))


def test_checkpoint_loads_with_weights_only_and_holds_the_state(run: Path) -> None:
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    for key in ("model", "ema", "optimizer", "scheduler", "rng", "recipe", "data_info", "versions"):
        assert key in ck, key
    assert ck["epoch"] == 2 and ck["batch_in_epoch"] == 0 and ck["step"] == 12
    assert ck["task"] == "classification" and ck["data_info"]["num_classes"] == 3
    assert isinstance(ck["rng"]["torch"], torch.Tensor)
    assert len(ck["optimizer"]["state"]) > 0
    # EMA weights (decay 0.5) differ from the model's but stay close
    name = next(k for k, v in ck["model"].items() if v.is_floating_point() and v.ndim == 4)
    assert not torch.equal(ck["model"][name], ck["ema"][name])


def test_eval_reports_top1_top5_of_the_checkpoint(run: Path, data: Path) -> None:
    res = runner.invoke(app, ["eval", "--checkpoint", str(run / "last.pt"), "--data", str(data), "--json",
                              "--workers", "0"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert out["top1"] == pytest.approx(last["top1"]) and out["top5"] == pytest.approx(last["top5"])
    assert out["images"] == 12 and out["images_per_s"] > 0
    res = runner.invoke(app, ["eval", "--checkpoint", str(run / "last.pt"), "--data", str(data), "--json",
                              "--workers", "0", "--ema"])
    assert res.exit_code == 0 and "top1" in json.loads(res.output.strip().splitlines()[-1])


def test_existing_run_needs_resume_and_resume_needs_a_run(run: Path, data: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, train_args(data, run, 2, 4))
    assert res.exit_code == 2 and "--resume" in res.output
    res = runner.invoke(app, train_args(data, tmp_path / "fresh", 2, 4, "--resume"))
    assert res.exit_code == 2 and "last.pt" in res.output and "Traceback" not in res.output


def test_resume_of_a_finished_run_is_a_no_op_and_more_epochs_continue(run: Path, data: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    res = runner.invoke(app, train_args(data, copy, 3, 4, "--resume"))
    assert res.exit_code == 0, res.output
    rows = [json.loads(ln) for ln in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["step"] == 18


def test_user_errors_exit_2_without_traceback(data: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, train_args(tmp_path / "nowhere", tmp_path / "o", 1, 4))
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, train_args(data, tmp_path / "o2", 1, 4, "--set", "lr=-1"))
    assert res.exit_code == 2 and "lr" in res.output
    res = runner.invoke(app, train_args(data, tmp_path / "o3", 1, 4, "--set", "no_such_field=1"))
    assert res.exit_code == 2 and "no_such_field" in res.output
    res = runner.invoke(app, train_args(data, tmp_path / "o4", 1, 100))
    assert res.exit_code == 2 and "fewer than one step" in res.output

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    res = runner.invoke(app, ["eval", "--checkpoint", str(bad), "--data", str(data), "--json"])
    assert res.exit_code == 2 and str(bad) in res.output and "Traceback" not in res.output


def test_plot_writes_pngs(run: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["plot", str(run), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    for name in ("loss", "accuracy", "lr"):
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, ["plot", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "metrics.jsonl" in res.output


def test_odd_batch_with_mixup_keeps_the_last_image_unmixed() -> None:
    from spmkit.tasks.classification import ClassificationRecipe, ClassificationTask

    task = ClassificationTask(ClassificationRecipe(batch_size=3, mixup=0.8, cutmix=0.0, smoothing=0.1))
    task.setup_training(torch.nn.Identity(), {"num_classes": 4})
    x = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 3, 2, 2).clone()
    images, targets = task._mix(x.clone(), torch.tensor([0, 1, 2]))
    assert targets.shape == (3, 4) and torch.allclose(targets.sum(1), torch.ones(3))
    assert torch.equal(images[2], x[2]) and targets[2].argmax() == 2 and targets[2, 2] == pytest.approx(0.925)
    assert not torch.equal(images[0], x[0])  # the first two are mixed with each other (lam < 1 a.s.)


def test_accumulation_and_corrupt_images_during_training(data: Path, tmp_path: Path, caplog) -> None:
    import logging
    import shutil

    bad_data = tmp_path / "data"
    shutil.copytree(data, bad_data)
    bad = bad_data / "train" / "class_01" / "img_002.jpg"
    bad.write_bytes(b"\xff\xd8 truncated jpeg")
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="spmkit.data"):
        res = runner.invoke(app, train_args(bad_data, out, 1, 4, "--set", "accum_steps=2"))
    assert res.exit_code == 0, res.output
    row = json.loads((out / "metrics.jsonl").read_text())
    assert row["step"] == 3  # 6 batches, an optimizer step every 2
    assert row["train_skipped"] == 1 and row["val_skipped"] == 0
    assert any(str(bad) in r.getMessage() for r in caplog.records)
    assert "1 unreadable training images were skipped" in res.output


def test_task_scalars_are_averaged_into_the_epoch_row(data: Path, tmp_path: Path, monkeypatch) -> None:
    from spmkit.tasks.classification import ClassificationTask

    original = ClassificationTask.training_loss
    calls = []

    def with_scalars(self, model, batch):
        loss, _ = original(self, model, batch)
        calls.append(1)
        return loss, {"answer": float(len(calls))}  # 1, 2, ..., 6 over the epoch

    monkeypatch.setattr(ClassificationTask, "training_loss", with_scalars)
    out = tmp_path / "run"
    res = runner.invoke(app, train_args(data, out, 1, 4))
    assert res.exit_code == 0, res.output
    row = json.loads((out / "metrics.jsonl").read_text())
    assert row["train_answer"] == pytest.approx(3.5)
