"""kill -9 in the middle of an epoch, then --resume: the step counter and lr follow an uninterrupted run."""

from __future__ import annotations


import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from imagefolder_util import make_imagefolder, train_args
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.train.trainer import FAULT_ENV

ROOT = Path(__file__).resolve().parents[1]



def _steps(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "steps.jsonl").read_text().splitlines()]


def test_kill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=8, val_per_class=2)
    extra = ("--set", "ckpt_every_steps=2", "--set", "warmup_epochs=0.5")
    runner = CliRunner()
    full = tmp_path / "full"
    res = runner.invoke(app, train_args(data, full, 2, 4, *extra))
    assert res.exit_code == 0, res.output

    killed = tmp_path / "killed"
    env = {**os.environ, FAULT_ENV: "9", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "spmkit", *train_args(data, killed, 2, 4, *extra)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ck = torch.load(killed / "last.pt", map_location="cpu", weights_only=True)
    # 6 steps an epoch; the last checkpoint before the kill at step 9 is step 8 = epoch 2, batch 2
    assert (ck["epoch"], ck["batch_in_epoch"], ck["step"]) == (1, 2, 8)
    assert [s["step"] for s in _steps(killed)][-1] == 9  # the killed run got further than its checkpoint
    assert not list(killed.glob(".*tmp*"))  # no half-written checkpoint left behind

    res = runner.invoke(app, train_args(data, killed, 2, 4, *extra, "--resume"))
    assert res.exit_code == 0, res.output
    a, b = _steps(full), _steps(killed)
    assert [s["step"] for s in b] == list(range(1, 13))
    assert [s["lr"] for s in b] == [s["lr"] for s in a]
    ck_full = torch.load(full / "last.pt", map_location="cpu", weights_only=True)
    ck_res = torch.load(killed / "last.pt", map_location="cpu", weights_only=True)
    assert ck_res["step"] == ck_full["step"] == 12
    assert ck_res["optimizer"]["param_groups"][0]["lr"] == ck_full["optimizer"]["param_groups"][0]["lr"]
    rows = [json.loads(ln) for ln in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
