"""Stop a run on a signal at a step boundary with a checkpoint, and requeue a SLURM job that asked for it.

SLURM ends a job early (preemption, ``scontrol requeue``, ``scancel``, the time limit) by sending SIGTERM to
every process of the job, then SIGKILL ``KillWait`` seconds later (30 s by default). An advance signal before
the time limit (``#SBATCH --signal=USR1@90``) goes to every process of the job's steps.

:func:`install` makes SIGTERM, and the requeue signal when one is named (``spmkit train --requeue-signal
USR1``), set a flag instead of ending the process. ``hooks.PreemptionHook`` (a hook of the training loop)
asks :class:`StopCheck` after every optimizer step: one process reads its flag every step; several
processes agree on it with one small all-reduce every :data:`CHECK_EVERY` steps (and at the last step of an
epoch, before evaluation), so that all stop after the same step. The loop then writes ``last.pt`` at that
step (``TrainLoop.request_stop``); :func:`finish` reports, requeues the SLURM job after a requeue signal
(``scontrol requeue $SLURM_JOB_ID``, when the job allows it) and returns :class:`TrainingStopped`, which
ends the process with :data:`STOP_EXIT_CODE`. ``--auto-resume`` continues from that step.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from spmkit.errors import SpmkitError

#: the exit code of a run that stopped on a signal after writing ``last.pt`` (EX_TEMPFAIL of sysexits.h:
#: "a temporary failure; run again": ``--auto-resume`` continues it)
STOP_EXIT_CODE = 75
#: several processes agree whether to stop every this many optimizer steps (one all-reduce of two numbers and
#: a host sync; at 2 s a step that is 10 s of SLURM's 30 s KillWait at most)
CHECK_EVERY = 5
#: signals that may not be chosen as the requeue signal (they stop, kill or are SIGTERM itself)
_RESERVED = {signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGCONT}


class SignalNameError(SpmkitError):
    """An unknown or unusable signal name."""


class TrainingStopped(Exception):
    """Training stopped on a signal after rank 0 wrote ``last.pt``; not an error (exit :data:`STOP_EXIT_CODE`)."""

    exit_code = STOP_EXIT_CODE

    def __init__(self, message: str, step: int, requeued: bool) -> None:
        super().__init__(message)
        self.step = step
        self.requeued = requeued


@dataclass
class StopRequest:
    """The first stop signal this process received."""

    signum: int
    requeue: bool
    at: float  # time.monotonic() when it arrived

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


_request: StopRequest | None = None
_installed: dict[int, bool] = {}  # signal -> requeue


def parse_signal(name: str) -> int:
    """``USR1``, ``SIGUSR1`` or ``10`` -> the signal number; an error for unknown or reserved signals."""
    text = str(name).strip().upper()
    try:
        sig = signal.Signals(int(text)) if text.isdigit() else signal.Signals[text if text.startswith("SIG") else "SIG" + text]
    except (KeyError, ValueError):
        raise SignalNameError(f"--requeue-signal {name!r}: not a signal name (e.g. USR1, USR2).") from None
    if sig in _RESERVED:
        raise SignalNameError(f"--requeue-signal {name}: {sig.name} cannot be the requeue signal; SIGTERM always "
                              f"stops the run with a checkpoint. Use USR1 or USR2 (#SBATCH --signal=USR1@90).")
    return int(sig)


def _handler(signum: int, frame: Any) -> None:
    global _request
    if _request is None:
        _request = StopRequest(signum, _installed.get(signum, False), time.monotonic())
    elif _installed.get(signum, False) and not _request.requeue:
        _request = StopRequest(_request.signum, True, _request.at)


def install(requeue_signal: int | None = None) -> dict[int, Any]:
    """Stop at the next step on SIGTERM, and on ``requeue_signal`` stop and requeue the SLURM job.

    Call early, from the main thread (elsewhere nothing changes); returns the handlers it replaced, for
    :func:`uninstall`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    wanted = {int(signal.SIGTERM): False}
    if requeue_signal is not None:
        wanted[int(requeue_signal)] = True
    previous = {}
    for sig, requeue in wanted.items():
        previous[sig] = signal.signal(sig, _handler)
        _installed[sig] = requeue
    return previous


def install_early(argv: Sequence[str]) -> None:
    """``spmkit train`` before its imports (seconds on a busy node): SIGTERM and the ``--requeue-signal``
    set the flag from the first moment, so a signal during start-up stops the run instead of killing it."""
    if len(argv) < 2 or argv[1] != "train" or "spmkit" not in (Path(argv[0]).stem, Path(argv[0]).parent.name):
        return
    sig = None
    for k, arg in enumerate(argv):
        value = argv[k + 1] if arg == "--requeue-signal" and k + 1 < len(argv) else (
            arg.split("=", 1)[1] if arg.startswith("--requeue-signal=") else None)
        if value is not None:
            try:
                sig = parse_signal(value)
            except SignalNameError:
                return  # the command reports it
    install(sig)


def uninstall(previous: dict[int, Any]) -> None:
    """Put back the handlers :func:`install` replaced and forget a received signal."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)
        _installed.pop(sig, None)
    reset()


def installed_signals() -> dict[int, bool]:
    """The signals this process handles: ``{signal: requeue}``."""
    return dict(_installed)


def requested() -> StopRequest | None:
    """The stop this process was asked for, if any."""
    return _request


def reset() -> None:
    """Forget a received signal (tests; a process trains once)."""
    global _request
    _request = None


def ignore_signals() -> None:
    """After the stop: the signals this process handled are ignored while it ends (a requeue sends SIGTERM
    again, and Python's shutdown would otherwise let it end the process with -15 instead of the stop code)."""
    for sig in (*_installed, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def worker_init() -> None:
    """In a data-loader worker: leave the stop signals to the main process (which stops the workers itself).

    SLURM signals every process of the job, data-loader workers included; a worker ended by SIGTERM would make
    the main process fail on its next batch instead of stopping at the step boundary."""
    for sig in _installed:
        signal.signal(sig, signal.SIG_IGN)


class StopCheck:
    """Whether every process should stop after this optimizer step (all processes call it at every step)."""

    def __init__(self, ctx, every: int = CHECK_EVERY) -> None:
        self.ctx = ctx
        self.every = max(1, int(every))

    def __call__(self, step: int, epoch_end: bool) -> StopRequest | None:
        local = _request
        if not self.ctx.distributed:
            return local
        if step % self.every and not epoch_end:
            return None
        import torch

        flags = torch.tensor([1.0 if local else 0.0, 1.0 if local and local.requeue else 0.0],
                             dtype=torch.float64, device=self.ctx.device)
        self.ctx.all_reduce_sum(flags)
        stop, requeue = float(flags[0]) > 0, float(flags[1]) > 0
        if not stop:
            return None
        if local is None:  # another process received it (e.g. a signal sent to one task only)
            return StopRequest(int(signal.SIGTERM), requeue, time.monotonic())
        return StopRequest(local.signum, requeue or local.requeue, local.at)


def slurm_job_id(env=os.environ) -> str | None:
    return env.get("SLURM_JOB_ID") or None


def _scontrol(*args: str) -> subprocess.CompletedProcess | None:
    if shutil.which("scontrol") is None:
        return None
    try:
        return subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def requeue_allowed(job_id: str) -> bool | None:
    """``Requeue=`` of the job (``--requeue`` / ``--no-requeue`` / ``JobRequeue``); ``None`` when unknown."""
    out = _scontrol("show", "job", "-o", job_id)
    if out is None or out.returncode:
        return None
    m = re.search(r"\bRequeue=(\d)", out.stdout)
    return None if m is None else m.group(1) == "1"


def requeue_pending(env=os.environ) -> bool:
    """Whether SLURM is requeueing this job now: its ``Restarts`` count is above the one it started with
    (``SLURM_RESTART_COUNT``; a requeue raises it before the job's processes get SIGTERM, a cancel does not)."""
    job = slurm_job_id(env)
    out = _scontrol("show", "job", "-o", job) if job else None
    m = re.search(r"\bRestarts=(\d+)", out.stdout) if out is not None and out.returncode == 0 else None
    return m is not None and int(m.group(1)) > int(env.get("SLURM_RESTART_COUNT", "0") or 0)


def requeue_slurm_job(env=os.environ) -> tuple[bool, str]:
    """Requeue this SLURM job (``scontrol requeue``); (done, what happened in one sentence)."""
    job = slurm_job_id(env)
    if job is None:
        return False, "not inside a SLURM job (no SLURM_JOB_ID): nothing to requeue"
    if _scontrol("version") is None:
        return False, f"scontrol is not available: SLURM job {job} was not requeued"
    if requeue_allowed(job) is False:
        return False, (f"SLURM job {job} does not allow requeueing (--no-requeue, or JobRequeue=0 in slurm.conf); "
                       f"submit it again (or add --requeue)")
    out = _scontrol("requeue", job)
    if out is None or out.returncode:
        why = (out.stderr or out.stdout).strip().splitlines()[-1] if out is not None and (out.stderr or out.stdout) else "no answer"
        return False, f"scontrol requeue {job} failed ({why})"
    return True, f"requeued SLURM job {job}: it continues from last.pt when it starts again"


def finish(request: StopRequest, *, is_main: bool, last: Path, step: int, epoch: int, batch: int, batches: int,
           message: Callable[[str], None], env=os.environ) -> TrainingStopped:
    """After ``last.pt`` was written at ``step``: report (rank 0), requeue when asked, and return the
    exception that ends the process."""
    requeued = False
    if is_main:
        spent = time.monotonic() - request.at
        message(f"stopped on {request.name} after step {step} (epoch {epoch}, batch {batch}/{batches}); wrote "
                f"{last.name} {spent:.1f} s after the signal; exit code {STOP_EXIT_CODE}, --auto-resume continues "
                f"at step {step}")
        if request.requeue:
            requeued, what = requeue_slurm_job(env)
            message(what)
    return TrainingStopped(f"training stopped on {request.name} at step {step}", step, requeued)


def describe(ckpt_every_steps: int | None, world_size: int, env=os.environ) -> list[str]:
    """The run summary's lines on signals, checkpoints and the SLURM job (from the installed handlers)."""
    requeue = [sig for sig, rq in _installed.items() if rq]
    every = "every step" if world_size == 1 else f"every {CHECK_EVERY} steps"
    sig = "SIGTERM" + (f" or {signal.Signals(requeue[0]).name}" if requeue else "") if _installed else None
    cadence = f"every {ckpt_every_steps} steps and " if ckpt_every_steps else ""
    lines = [f"checkpoint  last.pt {cadence}at every epoch end"
             + (f"; on {sig} at the next step (checked {every}), then exit {STOP_EXIT_CODE}" if sig else "")]
    job = slurm_job_id(env)
    if job is not None:
        if requeue:
            allowed = requeue_allowed(job) if is_main_process(env) else None  # one query per job
            how = {True: "it allows requeueing", False: "it does NOT allow requeueing (--no-requeue)",
                   None: "requeue permission unknown"}[allowed]
            lines.append(f"slurm       job {job}: {signal.Signals(requeue[0]).name} requeues it ({how}); "
                         f"after a requeue or preemption --auto-resume continues from last.pt")
        else:
            lines.append(f"slurm       job {job}: no requeue signal (--requeue-signal USR1 with #SBATCH "
                         f"--signal=USR1@90 requeues before the time limit); after a requeue or preemption "
                         f"--auto-resume continues from last.pt")
    return lines


def is_main_process(env=os.environ) -> bool:
    """Rank 0 of a launched run, or a run of one process."""
    return env.get("RANK", "0") == "0"
