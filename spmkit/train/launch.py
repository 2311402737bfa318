"""Start N training processes per node.

``spmkit train --gpus 8`` (or ``--device cpu --nproc 2``) re-runs the same ``spmkit train`` command in N
child processes; the children see ``LOCAL_RANK`` and train instead of launching. Across machines:
``--nodes 2 --node-rank i --rdzv-endpoint host:port`` for a static assignment, or ``--nodes 2
--rdzv-endpoint host:29500`` on every node (c10d rendezvous through ``torch.distributed.run``; ranks are
assigned). Under SLURM (``SLURM_NNODES`` / ``SLURM_NODEID`` / ``SLURM_JOB_ID``) the node count, node rank
and rendezvous id are read from the job, and the endpoint defaults to ``MASTER_ADDR:MASTER_PORT`` or the
job's first host.

Ranks known in advance (one node, or a node rank: always under SLURM) are started here, with the
environment ``torch.distributed.run`` would give them (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), so that this process owns the signals: SIGTERM
and the requeue signal are passed on to the children, which stop at a step boundary with a checkpoint
(``spmkit.train.preemption``), and nothing prints a launcher traceback at a preemption. When a child
fails, the others get SIGTERM and, :data:`FAILURE_GRACE_S` later, SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from spmkit.errors import SpmkitError


class LaunchError(SpmkitError):
    """Inconsistent launch options (nodes, ranks, rendezvous)."""


@dataclass(frozen=True)
class LaunchPlan:
    nproc_per_node: int
    nodes: int = 1
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str = "spmkit"

    @property
    def static(self) -> bool:
        """Every rank is known before starting (one node, or this node's rank given): no rendezvous."""
        return self.nodes == 1 or self.node_rank is not None

    def torchrun_args(self) -> list[str]:
        args = [f"--nproc-per-node={self.nproc_per_node}"]
        if self.nodes == 1 and self.rdzv_endpoint is None:
            return ["--standalone", *args]
        if self.rdzv_endpoint is None:
            raise LaunchError(f"--nodes {self.nodes} needs --rdzv-endpoint HOST:PORT (the same on every node).")
        args.append(f"--nnodes={self.nodes}")
        if self.node_rank is not None:
            host, _, port = self.rdzv_endpoint.rpartition(":")
            if not host or not port.isdigit():
                raise LaunchError(f"--rdzv-endpoint {self.rdzv_endpoint!r}: expected HOST:PORT.")
            return [*args, f"--node-rank={self.node_rank}", f"--master-addr={host}", f"--master-port={port}"]
        return [*args, "--rdzv-backend=c10d", f"--rdzv-endpoint={self.rdzv_endpoint}", f"--rdzv-id={self.rdzv_id}"]


def in_launched_process(env: Mapping[str, str] = os.environ) -> bool:
    """True inside a process started by torchrun (it sets ``LOCAL_RANK``)."""
    return "LOCAL_RANK" in env


def _slurm_first_host(env: Mapping[str, str]) -> str | None:
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        return None
    if shutil.which("scontrol"):
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.split()[0]
    first = nodelist.split(",")[0]
    if "[" in first:  # node[01-04] -> node01
        prefix, rest = first.split("[", 1)
        first = prefix + rest.split("-")[0].split(",")[0].rstrip("]")
    return first


def plan_launch(nproc: int, nodes: int | None = None, node_rank: int | None = None,
                rdzv_endpoint: str | None = None, env: Mapping[str, str] = os.environ) -> LaunchPlan | None:
    """The launch to do, or ``None`` when one process on one node is enough (train in this process)."""
    if nproc < 1:
        raise LaunchError(f"the number of processes per node must be at least 1, got {nproc}.")
    if "SLURM_NNODES" in env and nodes is None:
        nodes = int(env["SLURM_NNODES"])
        if node_rank is None and "SLURM_NODEID" in env:
            node_rank = int(env["SLURM_NODEID"])
        if rdzv_endpoint is None and nodes > 1:
            host = env.get("MASTER_ADDR") or _slurm_first_host(env)
            rdzv_endpoint = f"{host}:{env.get('MASTER_PORT', '29500')}" if host else None
    nodes = nodes or 1
    if nodes < 1:
        raise LaunchError(f"--nodes must be at least 1, got {nodes}.")
    if node_rank is not None and not 0 <= node_rank < nodes:
        raise LaunchError(f"--node-rank {node_rank} is outside 0..{nodes - 1}.")
    if nproc == 1 and nodes == 1:
        return None
    return LaunchPlan(nproc, nodes, node_rank if nodes > 1 else None, rdzv_endpoint,
                      rdzv_id=env.get("SLURM_JOB_ID", "spmkit"))


#: seconds the other processes get to end after one failed, before SIGKILL
FAILURE_GRACE_S = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _master(plan: LaunchPlan) -> tuple[str, str]:
    if plan.rdzv_endpoint is None:
        return "127.0.0.1", str(_free_port())
    host, _, port = plan.rdzv_endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise LaunchError(f"--rdzv-endpoint {plan.rdzv_endpoint!r}: expected HOST:PORT.")
    return host, port


def rank_envs(plan: LaunchPlan, master: tuple[str, str]) -> list[dict[str, str]]:
    """The distributed environment of each process this node starts (as torchrun sets it)."""
    n = plan.nproc_per_node
    node = plan.node_rank or 0
    return [{"RANK": str(node * n + k), "LOCAL_RANK": str(k), "WORLD_SIZE": str(plan.nodes * n),
             "LOCAL_WORLD_SIZE": str(n), "GROUP_RANK": str(node), "ROLE_RANK": str(node * n + k),
             "ROLE_WORLD_SIZE": str(plan.nodes * n), "MASTER_ADDR": master[0], "MASTER_PORT": master[1]}
            for k in range(n)]


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode  # killed by signal N -> 128 + N, as a shell


def _signal(procs: Sequence[subprocess.Popen], sig: int) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass


def spawn(plan: LaunchPlan, child_args: Sequence[str], env: Mapping[str, str],
          forward: Sequence[int] | None = None) -> int:
    """Start this node's processes, pass ``forward`` signals on to them (default: those
    ``preemption.install`` handles, else SIGTERM), and wait for all of them.

    Returns 0 when all succeed, the stop code when they stopped on a signal (``preemption.STOP_EXIT_CODE``),
    else the first failure's exit code (128 + N for a process killed by signal N)."""
    from spmkit.train.preemption import STOP_EXIT_CODE, installed_signals, requested

    if forward is None:
        forward = list(installed_signals()) or [int(signal.SIGTERM)]
    early = requested()
    if early is not None:  # a stop signal arrived before any process started: nothing to save
        if early.requeue:
            from spmkit.train.preemption import requeue_slurm_job

            print(f"stopped on {early.name} before training started; {requeue_slurm_job()[1]}", flush=True)
        return STOP_EXIT_CODE
    cmd = [sys.executable, "-m", "spmkit", *child_args]
    procs: list[subprocess.Popen] = []
    main = threading.current_thread() is threading.main_thread()
    previous = {}
    if main:
        for sig in forward:
            previous[sig] = signal.signal(sig, lambda signum, frame: _signal(procs, signum))
    try:
        for rank_env in rank_envs(plan, _master(plan)):
            procs.append(subprocess.Popen(cmd, env={**env, **rank_env}))
        if main and requested() is not None:  # arrived while starting: the children have not seen it
            _signal(procs, requested().signum)
        first_failure: int | None = None
        failed_at = 0.0
        while any(p.poll() is None for p in procs):
            if first_failure is None:
                bad = [p.returncode for p in procs if p.returncode not in (None, 0, STOP_EXIT_CODE)]
                if bad:
                    first_failure, failed_at = _exit_code(bad[0]), time.monotonic()
                    _signal(procs, signal.SIGTERM)
            elif time.monotonic() - failed_at > FAILURE_GRACE_S:
                _signal(procs, signal.SIGKILL)
            time.sleep(0.2)
    except BaseException:  # KeyboardInterrupt (the children got it too) or an error here: leave no orphans
        deadline = time.monotonic() + 5.0
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal(procs, signal.SIGKILL)
        for p in procs:
            p.wait()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    codes = [_exit_code(p.returncode) for p in procs]
    if first_failure is not None:
        return first_failure
    failures = [c for c in codes if c not in (0, STOP_EXIT_CODE)]
    if failures:
        return failures[0]
    return STOP_EXIT_CODE if STOP_EXIT_CODE in codes else 0


def launch(plan: LaunchPlan, child_args: Sequence[str], env: Mapping[str, str] | None = None,
           forward: Sequence[int] | None = None) -> int:
    """Run ``python -m spmkit <child_args>`` in this node's processes; returns their exit code.

    Static plans start the processes here (:func:`spawn`); a c10d rendezvous goes through
    ``torch.distributed.run``."""
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("OMP_NUM_THREADS", "1")
    if plan.static:
        return spawn(plan, child_args, run_env, forward)
    cmd = [sys.executable, "-m", "torch.distributed.run", *plan.torchrun_args(), "-m", "spmkit", *child_args]
    return subprocess.run(cmd, env=run_env).returncode
