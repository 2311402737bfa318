"""A stop signal (SLURM's SIGTERM at a preemption, a requeue signal before a time limit) ends training at a step
boundary with last.pt written at that step; --auto-resume continues from there as an uninterrupted run would."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from imagefolder_util import TEST_MODEL, make_imagefolder

from spmkit.train import preemption
from spmkit.train.distributed import DistContext
from spmkit.train.reporter import NullReporter
from spmkit.train.trainer import TrainConfig, train
from spmkit.tasks.base import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ["img_size=32", "warmup_epochs=0.5", "log_every_steps=1", "workers=0", "batch_size=4", "epochs=2"]


def _steps(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "steps.jsonl").read_text().splitlines()]


class SignalAtStep(NullReporter):
    """Sends ``sig`` to this process when step ``at`` is logged (as SLURM would, between two steps)."""

    def __init__(self, at: int, sig: int = signal.SIGTERM) -> None:
        super().__init__()
        self.at, self.sig, self.messages = at, sig, []

    def log_step(self, info) -> None:
        if info["step"] == self.at:
            os.kill(os.getpid(), self.sig)

    def message(self, text: str, level: str = "warning") -> None:
        self.messages.append(text)


def _cfg(data: Path, out: Path, resume: str = "no") -> TrainConfig:
    return TrainConfig(model=ModelSpec(TEST_MODEL), data=data, output=out, overrides=list(OVERRIDES), device="cpu",
                       resume=resume)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("data"), classes=3, train_per_class=8, val_per_class=2)


@pytest.fixture(scope="module")
def full(data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "run"
    train(_cfg(data, out), reporter=NullReporter())
    return out


@pytest.fixture
def handlers():
    previous = preemption.install(int(signal.SIGUSR1))
    yield
    preemption.uninstall(previous)


# 24 images, batch 4 -> 6 steps an epoch: step 4 is inside epoch 1, step 6 its last step (before evaluation)
@pytest.mark.parametrize("at", [4, 6])
def test_sigterm_writes_last_pt_at_that_step_and_resume_follows_the_uninterrupted_run(
        data: Path, full: Path, tmp_path: Path, handlers, at: int) -> None:
    out = tmp_path / "run"
    rep = SignalAtStep(at)
    with pytest.raises(preemption.TrainingStopped) as info:
        train(_cfg(data, out), reporter=rep)
    assert info.value.exit_code == preemption.STOP_EXIT_CODE == 75 and info.value.step == at
    assert not info.value.requeued  # SIGTERM: SLURM requeues (or not) by itself
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert (ck["epoch"], ck["batch_in_epoch"], ck["step"]) == (0, at, at)  # exactly the step it stopped after
    assert [s["step"] for s in _steps(out)] == list(range(1, at + 1))
    assert not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text().strip()  # no eval yet
    assert any(m.startswith(f"stopped on SIGTERM after step {at}") for m in rep.messages), rep.messages
    assert not list(out.glob(".*tmp*"))

    preemption.reset()
    rows = train(_cfg(data, out, resume="auto"), reporter=NullReporter())
    a, b = _steps(full), _steps(out)
    assert [s["step"] for s in b] == list(range(1, 13))  # nothing trained twice, nothing skipped
    assert [s["lr"] for s in b] == [s["lr"] for s in a]
    assert [r["epoch"] for r in rows] == [1, 2]
    ck_full = torch.load(full / "last.pt", map_location="cpu", weights_only=True)
    ck_res = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck_res["step"] == ck_full["step"] == 12
    assert ck_res["optimizer"]["param_groups"][0]["lr"] == ck_full["optimizer"]["param_groups"][0]["lr"]


def test_requeue_signal_outside_slurm_stops_and_says_there_is_nothing_to_requeue(
        data: Path, tmp_path: Path, handlers, monkeypatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    rep = SignalAtStep(2, signal.SIGUSR1)
    with pytest.raises(preemption.TrainingStopped) as info:
        train(_cfg(data, tmp_path / "run"), reporter=rep)
    assert info.value.step == 2 and not info.value.requeued
    assert any("stopped on SIGUSR1 after step 2" in m for m in rep.messages)
    assert any("not inside a SLURM job" in m for m in rep.messages)


def test_no_signal_no_stop(data: Path, tmp_path: Path, handlers) -> None:
    rows = train(_cfg(data, tmp_path / "run"), reporter=NullReporter())
    assert [r["epoch"] for r in rows] == [1, 2]


class _Ctx(DistContext):
    """Two processes, the other of which reports ``other`` (stop, requeue) in the all-reduce."""

    def __init__(self, other: tuple[float, float]) -> None:
        super().__init__(rank=0, world_size=2)
        self.other, self.reduced = other, 0

    def all_reduce_sum(self, tensor):
        self.reduced += 1
        tensor += torch.tensor(self.other, dtype=tensor.dtype)
        return tensor


def test_processes_agree_only_at_check_steps_and_a_signal_on_any_process_stops_all(handlers) -> None:
    ctx = _Ctx((1.0, 1.0))  # another process received the requeue signal; this one nothing
    check = preemption.StopCheck(ctx, every=5)
    assert check(3, epoch_end=False) is None and ctx.reduced == 0  # no collective between check steps
    stop = check(5, epoch_end=False)
    assert stop is not None and stop.requeue and ctx.reduced == 1
    assert check(7, epoch_end=True) is not None and ctx.reduced == 2  # the last step of an epoch is a check step
    quiet = preemption.StopCheck(_Ctx((0.0, 0.0)), every=5)
    assert quiet(10, epoch_end=False) is None


def test_signal_names() -> None:
    assert preemption.parse_signal("USR1") == preemption.parse_signal("SIGUSR1") == int(signal.SIGUSR1)
    assert preemption.parse_signal(str(int(signal.SIGUSR2))) == int(signal.SIGUSR2)
    for bad in ("TERM", "KILL", "nope", "INT"):
        with pytest.raises(preemption.SignalNameError):
            preemption.parse_signal(bad)


def _fake_scontrol(bin_dir: Path, job_text: str, log: Path) -> None:
    bin_dir.mkdir()
    script = bin_dir / "scontrol"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n"
                      f"if [ \"$1\" = show ]; then echo '{job_text}'; fi\nexit 0\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize("allowed", [True, False])
def test_requeue_asks_scontrol_only_when_the_job_allows_it(tmp_path: Path, monkeypatch, allowed: bool) -> None:
    log = tmp_path / "calls"
    _fake_scontrol(tmp_path / "bin", f"JobId=42 JobState=RUNNING Requeue={int(allowed)} Restarts=0", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    done, what = preemption.requeue_slurm_job({"SLURM_JOB_ID": "42"})
    calls = log.read_text().splitlines()
    assert done is allowed
    assert ("requeue 42" in calls) is allowed
    assert ("requeued SLURM job 42" in what) if allowed else ("does not allow requeueing" in what)


def test_a_requeue_in_progress_is_told_from_a_cancel(tmp_path: Path, monkeypatch) -> None:
    log = tmp_path / "calls"
    _fake_scontrol(tmp_path / "bin", "JobId=42 JobState=COMPLETING Requeue=1 Restarts=2", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert preemption.requeue_pending({"SLURM_JOB_ID": "42", "SLURM_RESTART_COUNT": "1"})  # 2 > 1: requeued
    assert not preemption.requeue_pending({"SLURM_JOB_ID": "42", "SLURM_RESTART_COUNT": "2"})  # cancelled
    assert not preemption.requeue_pending({})


@pytest.mark.slow
def test_two_processes_stop_together_on_sigterm_to_the_launcher(data: Path, tmp_path: Path) -> None:
    """The launcher passes SIGTERM on; both processes stop after the same step, rank 0 writes last.pt there,
    the command exits 75 without a traceback, and --auto-resume finishes the run without repeating a step."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    # 24 images / (2 processes x 2) -> 6 steps an epoch, 4 epochs: 24 steps
    cmd = [sys.executable, "-m", "spmkit", "train", "--blueprint", TEST_MODEL, "--data", str(data), "--output",
           str(out), "--device", "cpu", "--nproc", "2", "--auto-resume", "--epochs", "4", "--batch-size", "2",
           "--workers", "1", "--set", "img_size=32", "--set", "log_every_steps=1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "steps.jsonl").exists() and len(_steps(out)) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 75, stdout[-2000:] + stderr[-3000:]
    assert "Traceback" not in stdout + stderr, stderr[-3000:]
    stopped = [ln for ln in stdout.splitlines() if "stopped on SIGTERM after step" in ln]
    assert len(stopped) == 1, stdout[-2000:]  # rank 0 reports, once
    at = int(stopped[0].split("after step ")[1].split()[0])
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == at == _steps(out)[-1]["step"] and at < 24
    assert at % preemption.CHECK_EVERY == 0 or at % 6 == 0  # a step where the processes compare flags

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert f"step {at}" in [ln for ln in again.stdout.splitlines() if "resumed" in ln][0]
    assert [s["step"] for s in _steps(out)] == list(range(1, 25))
