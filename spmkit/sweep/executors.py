"""Running a sweep's training runs: N at once on this machine (``--jobs``), or as SLURM jobs (submitit).

Locally, ``concurrent.futures`` runs ``--jobs`` runs at once; each slot owns a fixed share of the devices
(``CUDA_VISIBLE_DEVICES``: ``--gpus-per-run`` GPUs of the visible ones; on CPU, ``OMP_NUM_THREADS``: the
cores divided by the slots), and a run that ends hands its slot to the next. With submitit each run is one
job; the sweep waits for them and collects their results (``cluster="local"`` runs the same path with
submitit's local executor, for trying a sweep before a cluster).
"""

from __future__ import annotations

import os
import queue
import shutil
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from spmkit.sweep.errors import SweepError
from spmkit.sweep.run_job import RunJob, run_job, run_slurm_job

Done = Callable[[RunJob, dict[str, Any]], None]


def _visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def slot_envs(jobs: int, device: str, gpus_per_run: int) -> list[dict[str, str]]:
    """The environment of each of ``jobs`` slots: its GPUs, or its share of the CPU cores."""
    if jobs < 1 or gpus_per_run < 1:
        raise SweepError(f"--jobs and --gpus-per-run must be at least 1 (got {jobs} and {gpus_per_run}).")
    gpus = [] if device == "cpu" else _visible_gpus()
    if device.startswith("cuda") and not gpus:
        raise SweepError("--device cuda: no GPU is visible (CUDA_VISIBLE_DEVICES / torch.cuda.device_count()).")
    if gpus:
        need = jobs * gpus_per_run
        if need > len(gpus):
            raise SweepError(f"--jobs {jobs} x --gpus-per-run {gpus_per_run} needs {need} GPUs; "
                             f"{len(gpus)} are visible ({','.join(gpus)}).")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[k * gpus_per_run:(k + 1) * gpus_per_run])}
                for k in range(jobs)]
    if jobs == 1:
        return [{}]
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return [{"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} for _ in range(jobs)]


def run_local(jobs: Sequence[RunJob], n_jobs: int, gpus_per_run: int, on_done: Done,
              pass_fds: tuple[int, ...] = ()) -> None:
    """Run ``jobs`` with at most ``n_jobs`` at once, each in a slot of its own devices."""
    if not jobs:
        return
    device = jobs[0].settings.device
    envs = slot_envs(n_jobs, device, gpus_per_run)
    slots: queue.Queue[dict[str, str]] = queue.Queue()
    for env in envs:
        slots.put(env)

    def work(job: RunJob) -> tuple[RunJob, dict[str, Any]]:
        env = slots.get()
        try:
            return job, run_job(replace(job, env={**job.env, **env}), pass_fds)
        finally:
            slots.put(env)

    with ThreadPoolExecutor(max_workers=len(envs)) as pool:
        for future in as_completed([pool.submit(work, job) for job in jobs]):
            on_done(*future.result())


def run_submitit(jobs: Sequence[RunJob], folder: Path, on_done: Done, cluster: str = "slurm",
                 partition: str | None = None, time_min: int = 24 * 60, gpus_per_run: int = 1,
                 cpus_per_run: int | None = None) -> None:
    """Submit one job per run through submitit and wait for all of them (``cluster``: slurm or local)."""
    if not jobs:
        return
    try:
        import submitit
    except ImportError:
        raise SweepError("--executor slurm needs submitit: pip install 'spmkit[slurm]'.") from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise SweepError("--executor slurm: no sbatch on this machine; submit from a SLURM login node.")
    import spmkit

    root = str(Path(spmkit.__file__).resolve().parent.parent)
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params: dict[str, Any] = {"timeout_min": time_min, "name": "spmkit-sweep", "tasks_per_node": 1,
                              f"{cluster}_setup": [f"export PYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}}"]}
    if cluster == "slurm":
        # preemption and the time limit: the run writes last.pt on SIGTERM; on submitit's advance signal
        # (USR2, 90 s before the limit) it also requeues the job, which resumes it (docs/slurm.md)
        params["slurm_additional_parameters"] = {"requeue": True}
        sig = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
        jobs = [replace(job, settings=replace(job.settings, requeue_signal=sig)) for job in jobs]
    if jobs[0].settings.device != "cpu":
        params["gpus_per_node"] = gpus_per_run
    if cpus_per_run:
        params["cpus_per_task"] = cpus_per_run
    if cluster == "slurm" and partition:
        params["slurm_partition"] = partition
    executor.update_parameters(**params)
    submitted = [(job, executor.submit(run_slurm_job if cluster == "slurm" else run_job, job)) for job in jobs]
    for job, handle in submitted:
        try:
            result = handle.result()
        except Exception as exc:  # the job failed or was cancelled: submitit raises its own types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            result = {"status": "failed", "returncode": None, "log": str(handle.paths.stderr), "error": first}
        on_done(job, result)
