"""Against a real one-node SLURM cluster (tests/slurm_cluster.py; skipped where slurm-wlm and munge are not
installed): a preempted 2-process job resumes at the step it stopped, a time limit's advance signal requeues
the job, and a sweep whose variant is preempted mid-run finishes it without training any step twice."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imagefolder_util import make_imagefolder
from slurm_cluster import SlurmCluster, missing_reason

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))]

STEP = re.compile(r"^step (\d+)/(\d+) ", re.M)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # 3 x 16 images / (2 processes x batch 2) = 12 steps an epoch
    return make_imagefolder(tmp_path_factory.mktemp("data"), classes=3, train_per_class=16, val_per_class=2)


def _spmkit() -> str:
    return f"{sys.executable} -m spmkit"


def _script(path: Path, log: Path, body: str, *sbatch: str) -> Path:
    lines = ["#!/bin/bash", "#SBATCH --requeue", "#SBATCH --open-mode=append", f"#SBATCH --output={log}",
             *[f"#SBATCH {s}" for s in sbatch],
             f"export PYTHONPATH={ROOT}${{PYTHONPATH:+:$PYTHONPATH}} OMP_NUM_THREADS=1",
             'echo "== attempt ${SLURM_RESTART_COUNT:-0}"', body, ""]
    path.write_text("\n".join(lines))
    return path


def _wait_for(cond, timeout: float, what, every: float = 0.2):
    """Poll ``cond`` until it returns something true; ``what`` (a string or a callable giving one) explains."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise TimeoutError(what() if callable(what) else what)


def _read(p: Path) -> str:
    return p.read_text(errors="replace") if p.exists() else ""


def _steps(run: Path) -> list[int]:
    return [json.loads(ln)["step"] for ln in (run / "steps.jsonl").read_text().splitlines()]


def _stopped_at(text: str, sig: str) -> int:
    m = re.search(rf"stopped on {sig} after step (\d+)", text)
    assert m, text[-3000:]
    return int(m.group(1))


def _resumed_at(text: str) -> int:
    m = re.search(r"resumed \S+: epoch \d+, batch \d+, step (\d+)", text)
    assert m, text[-3000:]
    return int(m.group(1))


def test_requeued_two_process_job_resumes_at_the_step_it_stopped(cluster: SlurmCluster, data: Path,
                                                                 tmp_path: Path) -> None:
    run, log = tmp_path / "run", tmp_path / "job.log"
    body = (f"srun {_spmkit()} train --blueprint tiny_pvt --data {data} --output {run} --device cpu --nproc 2 "
            f"--auto-resume --epochs 3 --batch-size 2 --workers 1 --set img_size=32 --set log_every_steps=1")
    job = cluster.sbatch(_script(tmp_path / "job.sh", log, body))
    _wait_for(lambda: len(STEP.findall(_read(log))) >= 3, 240, lambda: f"job {job} printed no steps:\n{_read(log)[-2000:]}")
    cluster.run("scontrol", "requeue", job)
    printed = int(STEP.findall(_read(log))[-1][0])  # the last step printed before the signal (or just after)
    info = cluster.wait(job, lambda i: i.get("JobState") == "COMPLETED", 300, "the requeued job to complete")
    text = _read(log)
    assert info["Restarts"] == "1" and info["ExitCode"] == "0:0"
    assert "Traceback" not in text, text[-4000:]
    stopped, resumed = _stopped_at(text, "SIGTERM"), _resumed_at(text)
    assert resumed == stopped >= printed and stopped < 36
    assert text.index("stopped on SIGTERM") < text.index("== attempt 1") < text.index("resumed")
    assert _steps(run) == list(range(1, 37))  # every step once: nothing lost, nothing trained twice
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_time_limit_advance_signal_checkpoints_and_requeues_the_job(cluster: SlurmCluster, data: Path,
                                                                    tmp_path: Path) -> None:
    run, log = tmp_path / "run", tmp_path / "job.log"
    # far more training than two minutes (200 epochs of this tiny run can take under a minute); SLURM sends
    # USR1 60 s before the limit (it checks every ~30 s), so
    # 60 to 90 s after the start: time for the start-up and a few steps on a busy machine
    body = (f"srun {_spmkit()} train --blueprint tiny_pvt --data {data} --output {run} --device cpu --nproc 2 "
            f"--auto-resume --requeue-signal USR1 --epochs 20000 --batch-size 2 --workers 0 --set img_size=32 "
            f"--set log_every_steps=1")
    job = cluster.sbatch(_script(tmp_path / "job.sh", log, body, "--time=2", "--signal=USR1@60"))
    try:
        _wait_for(lambda: "resumed" in _read(log), 360, lambda: f"job {job} was not requeued:\n{_read(log)[-3000:]}", 1.0)
        text = _read(log)
        info = cluster.job(job)
        assert int(info["Restarts"]) >= 1 and info["JobState"] in ("RUNNING", "PENDING", "COMPLETING")
        assert "Traceback" not in text, text[-4000:]
        stopped = _stopped_at(text, "SIGUSR1")
        assert f"requeued SLURM job {job}" in text
        assert _resumed_at(text) == stopped > 0
        assert "DUE TO TIME LIMIT" not in text.split("== attempt 1")[0]  # it left before the limit
        assert "SIGUSR1 requeues it (it allows requeueing)" in text  # the run summary said so
    finally:
        cluster.run("scancel", job, check=False)


def test_sweep_with_a_preempted_variant_finishes_it_without_training_a_step_twice(
        cluster: SlurmCluster, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "spmkit", "sweep", "tiny_pvt", "--vary", "merging.type=conv,spm", "--data",
           str(data), "--output", str(out), "--epochs", "2", "--batch-size", "2", "--executor", "slurm",
           "--partition", "debug", "--cpus-per-run", "1", "--device", "cpu", "--set", "img_size=32",
           "--set", "workers=0"]
    env = {**cluster.env, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def first_run() -> Path | None:
            logs = sorted((out / "runs").glob("00_*.console.log")) if (out / "runs").exists() else []
            return logs[0] if logs and re.search(r"slurm +job \d+", _read(logs[0])) else None

        console = _wait_for(first_run, 240, "the first variant's job did not start")
        folder = console.with_name(console.name.removesuffix(".console.log"))
        _wait_for(lambda: (folder / "steps.jsonl").exists() and len(_steps(folder)) >= 3, 240,
                  "the first variant trained no steps")
        job = re.search(r"slurm +job (\d+)", _read(console)).group(1)
        cluster.run("scontrol", "requeue", job)
        output, _ = sweep.communicate(timeout=400)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, output[-3000:]
    rows = (out / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert [r.split(",")[header.index("status")] for r in rows[1:]] == ["ok", "ok"]
    text = _read(console)
    stopped = _stopped_at(text, "SIGTERM")
    assert _resumed_at(text) == stopped
    assert "Traceback" not in text
    # 48 images / batch 2 = 24 steps an epoch, 2 epochs: each step once
    assert _steps(folder) == list(range(1, 49))
    attempts = re.compile(r"^# \S+ \S+ .* -m spmkit train ", re.M)  # run_job's line before each training
    assert len(attempts.findall(text)) == 2  # the preempted one and its requeued job
    other = next(p for p in (out / "runs").glob("01_*.console.log"))
    assert len(attempts.findall(_read(other))) == 1  # the other variant was trained once, not again
