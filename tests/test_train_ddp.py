"""Two gloo processes through torch.distributed.run: sharded training, exact evaluation, one run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from imagefolder_util import make_imagefolder, train_args

ROOT = Path(__file__).resolve().parents[1]



def test_two_gloo_processes_train_and_evaluate(tmp_path: Path) -> None:
    data = make_imagefolder(tmp_path / "data", classes=3, train_per_class=8, val_per_class=5)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    cmd = [sys.executable, "-m", "spmkit", *train_args(data, out, 2, 4, "--devices", "cpu", "--nproc", "2")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    # 24 images over 2 processes with 4 each per step -> 3 steps an epoch (one row per epoch, rank 0 only)
    assert [r["step"] for r in rows] == [3, 6]
    # 15 val images split 8 + 7 over the processes, none counted twice
    assert all(r["val_images"] == 15 for r in rows)
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck["world_size"] == 2 and ck["step"] == 6
    # lr scales with the global batch (2 x 4): base lr 5e-4 * 8 / 512
    assert ck["optimizer"]["param_groups"][0]["initial_lr"] == pytest.approx(5e-4 * 8 / 512)
    from typer.testing import CliRunner

    from spmkit.cli.app import app

    res = CliRunner().invoke(app, ["eval", "--checkpoint", str(out / "last.pt"), "--data", str(data), "--json",
                                   "--workers", "0"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output.strip().splitlines()[-1])
    assert metrics["top1"] == pytest.approx(rows[-1]["top1"])
