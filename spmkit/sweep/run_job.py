"""Training one run of a variant: ``python -m spmkit train ... --auto-resume`` in the run's own folder.

Each run is a separate process, so a run that crashes or runs out of memory does not take the sweep with
it, ``--jobs`` gives each process its own devices through the environment, a run with several GPUs goes
through ``spmkit train``'s own torchrun launch, and a killed run resumes from its ``last.pt`` exactly as
``spmkit train --auto-resume`` does. A run is finished when ``metrics.jsonl`` holds its recipe's last
epoch; the sweep then writes ``result.json`` and never trains it again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from spmkit.io.safe_yaml import read_yaml_file


#: keys of a metrics.jsonl row that are not evaluation metrics
_ENGINE_KEYS = {"epoch", "step", "lr", "images_per_s", "epoch_time_s"}


@dataclass(frozen=True)
class TrainSettings:
    """How every run of a sweep trains (the same for all its runs)."""

    data: str
    task: str = "classification"
    recipe: str | None = None
    device: str = "auto"
    gpus: int = 1  # processes (GPUs) per run; > 1 launches DDP through spmkit train --gpus
    requeue_signal: str | None = None  # spmkit train --requeue-signal (SLURM jobs: submitit's advance signal)


@dataclass(frozen=True)
class RunJob:
    """Everything a process (local or a SLURM job) needs to train one run."""

    folder: str
    base: str
    blueprint_overrides: tuple[str, ...]
    recipe_overrides: tuple[str, ...]
    settings: TrainSettings
    env: dict[str, str] = field(default_factory=dict)


def train_command(job: RunJob) -> list[str]:
    s = job.settings
    cmd = [sys.executable, "-m", "spmkit", "train", "--blueprint", job.base, "--data", s.data,
           "--output", job.folder, "--task", s.task, "--device", s.device, "--auto-resume"]
    if s.recipe:
        cmd += ["--recipe", s.recipe]
    if s.gpus > 1:
        cmd += ["--gpus" if s.device != "cpu" else "--nproc", str(s.gpus)]
    if s.requeue_signal:
        cmd += ["--requeue-signal", s.requeue_signal]
    for o in job.blueprint_overrides:
        cmd += ["--model-set", o]
    for o in job.recipe_overrides:
        cmd += ["--set", o]
    return cmd


def child_env(extra: Mapping[str, str] = ()) -> dict[str, str]:
    """The environment of a training process: this one's, with this spmkit first on the path."""
    import spmkit

    root = str(Path(spmkit.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(dict(extra))
    return env


def _rows(folder: Path) -> list[dict[str, Any]]:
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def finished_metrics(folder: str | Path) -> dict[str, Any] | None:
    """The run's result when ``metrics.jsonl`` holds the last epoch of its recipe, else ``None``."""
    folder = Path(folder)
    rows, recipe = _rows(folder), folder / "recipe.yaml"
    if not rows or not recipe.is_file():
        return None
    epochs = (read_yaml_file(recipe) or {}).get("epochs")  # the recipe spmkit train wrote
    last = rows[-1]
    if epochs is None or last.get("epoch") != epochs:
        return None
    metrics = {k: v for k, v in last.items() if isinstance(v, (int, float)) and k not in _ENGINE_KEYS
               and not k.startswith(("train_", "best_")) and not k.endswith(("_images", "_skipped"))}
    return {"metrics": metrics, "epochs": epochs, "train_s": sum(r.get("epoch_time_s", 0.0) for r in rows)}


def read_result(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def state(folder: str | Path) -> str:
    """``done`` (result.json or all epochs logged), ``partial`` (a last.pt to resume) or ``new``."""
    folder = Path(folder)
    if (folder / "result.json").is_file() or finished_metrics(folder) is not None:
        return "done"
    return "partial" if (folder / "last.pt").is_file() else "new"


def console_log(folder: str | Path) -> Path:
    """The training process's console, captured beside its run folder (``RUN/train.log`` is the trainer's
    own log; a folder spmkit train did not create would be refused as someone else's)."""
    folder = Path(folder)
    return folder.with_name(folder.name + ".console.log")


#: the training processes running in this process (a SLURM job passes its signals on to them)
_children: list[subprocess.Popen] = []


def run_job(job: RunJob, pass_fds: tuple[int, ...] = ()) -> dict[str, Any]:
    """Train (or resume, or just collect) one run; returns its result, with ``status`` ``ok`` or ``failed``.

    Module-level and picklable: SLURM jobs (submitit) call it on the compute node (:func:`run_slurm_job`).
    """
    from spmkit.train.preemption import STOP_EXIT_CODE

    folder = Path(job.folder)
    folder.parent.mkdir(parents=True, exist_ok=True)  # the run folder itself is spmkit train's to create
    log = console_log(folder)
    done = finished_metrics(folder)
    code = 0
    if done is None:
        with open(log, "a") as f:
            f.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(train_command(job))}\n")
            f.flush()
            proc = subprocess.Popen(train_command(job), stdout=f, stderr=subprocess.STDOUT, env=child_env(job.env),
                                    pass_fds=pass_fds)
            _children.append(proc)
            try:
                code = proc.wait()
            finally:
                _children.remove(proc)
        done = finished_metrics(folder)
    if done is None:
        result = {"status": "failed", "returncode": code, "log": str(log)}
        if code == STOP_EXIT_CODE:
            result["error"] = "stopped on a signal with last.pt written; running the sweep again resumes it"
        return result
    result = {"status": "ok", **done}
    from spmkit.io.atomic import write_text_atomic

    write_text_atomic(folder / "result.json", json.dumps(result, indent=2))  # inside spmkit's own run folder
    return result


def _pass_on(signum: int, frame: Any) -> None:
    for p in list(_children):
        if p.poll() is None:
            try:
                p.send_signal(signum)
            except ProcessLookupError:
                pass


def run_slurm_job(job: RunJob) -> dict[str, Any]:
    """:func:`run_job` as a SLURM job (submitit): SIGTERM and the advance signal go on to the training process
    (which writes last.pt and, on the advance signal, requeues the job) instead of to submitit's handlers.

    When training stopped on a signal and SLURM is requeueing the job (preemption, ``scontrol requeue``, the
    run's own requeue), this process ends without a result, so submitit waits for the requeued job, which
    resumes from ``last.pt``; otherwise (``scancel``, a time limit) the run is reported as failed."""
    import os
    import signal

    from spmkit.train.preemption import STOP_EXIT_CODE, requeue_pending

    sigs = [signal.SIGTERM] + ([signal.Signals["SIG" + job.settings.requeue_signal.upper().removeprefix("SIG")]]
                               if job.settings.requeue_signal else [])
    previous = {sig: signal.signal(sig, _pass_on) for sig in sigs}
    try:
        result = run_job(job)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result.get("returncode") == STOP_EXIT_CODE and requeue_pending():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(STOP_EXIT_CODE)  # no result file: the requeued job trains this run on
    return result
