"""Start N training processes per node with ``torch.distributed.run`` (torchrun's elastic launcher).

``spmkit train --gpus 8`` (or ``--device cpu --nproc 2``) re-runs the same ``spmkit train`` command
under the launcher; the children see ``LOCAL_RANK`` and train instead of launching. Across machines:
``--nodes 2 --rdzv-endpoint host:29500`` on every node (c10d rendezvous; ranks are assigned), or
``--nodes 2 --node-rank i --rdzv-endpoint host:port`` for a static assignment. Under SLURM
(``SLURM_NNODES`` / ``SLURM_NODEID`` / ``SLURM_JOB_ID``) the node count, node rank and rendezvous id are
read from the job, and the endpoint defaults to ``MASTER_ADDR:MASTER_PORT`` or the job's first host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def launch(plan: LaunchPlan, child_args: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``python -m spmkit <child_args>`` under ``torch.distributed.run``; returns its exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", *plan.torchrun_args(), "-m", "spmkit", *child_args]
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(cmd, env=run_env).returncode
