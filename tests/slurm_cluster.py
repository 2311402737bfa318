"""A one-node SLURM cluster in a temporary folder, from the system's ``slurm-wlm`` and ``munge`` packages.

Used by the real-SLURM tests (``tests/test_slurm.py``) and by hand::

    python tests/slurm_cluster.py up /tmp/slurm      # prints: export SLURM_CONF=/tmp/slurm/slurm.conf
    python tests/slurm_cluster.py down /tmp/slurm

Everything lives under the folder: a generated munge key and a ``munged`` on its own socket, a
``slurm.conf`` (free ports, state and spool folders, logs, pid files), ``slurmctld`` and ``slurmd``. Only
the client commands need ``SLURM_CONF``; the system's own SLURM or munge (if any) is not touched. The
daemons run as the current user, which must be root (``slurmd`` starts jobs as their submitter).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "sinfo", "squeue")
#: the seconds between SIGTERM and SIGKILL when a job ends early (SLURM's default; the tests measure
#: that a checkpoint is written well inside it)
KILL_WAIT = 30


def missing_reason() -> str | None:
    """Why a cluster cannot be started here (``None`` when it can)."""
    absent = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if absent:
        return (f"SLURM is not installed ({', '.join(absent)} missing); "
                f"apt-get install slurm-wlm munge to run the real-SLURM tests")
    if os.geteuid() != 0:
        return "the one-node SLURM cluster needs root (slurmd starts jobs as their submitter)"
    return None


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """``CPUs=.. Boards=.. ... RealMemory=..`` of this machine, as ``slurmd -C`` reports it."""
    out = subprocess.run([_exe("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    first = out.splitlines()[0]
    return " ".join(w for w in first.split() if not w.startswith("NodeName="))


class SlurmCluster:
    """Start / stop munged, slurmctld and slurmd under ``root``; ``env`` is what client commands need."""

    def __init__(self, root: Path, kill_wait: int = KILL_WAIT) -> None:
        self.root = Path(root).resolve()
        self.kill_wait = kill_wait
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- set-up --------------------------------------------------------------------------------------
    def _write_files(self) -> None:
        for d in ("munge", "state", "spool", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        r = self.root
        self.conf.write_text("\n".join([
            "ClusterName=spmkit-test",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # cred_expire: a requeued job waits this long before it may start again (120 s by default)
            f"AuthInfo=socket={self.munge_socket},cred_expire=10",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            f"KillWait={self.kill_wait}",
            "JobRequeue=1",
            "PreemptType=preempt/none",
            "MinJobAge=600",
            "SchedulerParameters=sched_interval=2,defer_batch",
            "InactiveLimit=0",
            "MessageTimeout=20",
            f"NodeName={self.host} NodeAddr=127.0.0.1 {_node_line()} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
            "",
        ]))

    def _pid(self, name: str) -> int | None:
        p = self.root / f"{name}.pid"
        try:
            return int(p.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self, timeout: float = 90.0) -> "SlurmCluster":
        self._write_files()
        r = self.root
        subprocess.run([_exe("munged"), "--force", f"--socket={self.munge_socket}",
                        f"--key-file={r / 'munge' / 'munge.key'}", f"--pid-file={r / 'munged.pid'}",
                        f"--log-file={r / 'log' / 'munged.log'}", f"--seed-file={r / 'munge' / 'seed'}"],
                       check=True, capture_output=True, text=True)
        env = self.env
        # -i: ignore any state a previous cluster in this folder saved
        subprocess.run([_exe("slurmctld"), "-f", str(self.conf), "-i"], check=True, env=env)
        subprocess.run([_exe("slurmd"), "-f", str(self.conf), "-N", self.host], check=True, env=env)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=env)
            state = out.stdout.strip()
            if out.returncode == 0 and state.startswith("idle"):
                return self
            time.sleep(0.5)
        logs = "\n".join((r / "log" / f).read_text()[-1500:] for f in ("slurmctld.log", "slurmd.log")
                         if (r / "log" / f).exists())
        self.stop()
        raise RuntimeError(f"the SLURM node did not become idle in {timeout:.0f} s (state {state!r}):\n{logs}")

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (SIGTERM, then SIGKILL)."""
        if self.conf.exists():
            subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, env=self.env, timeout=30)
            subprocess.run(["scancel", "--user", "root"], capture_output=True, env=self.env, timeout=30)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self._pid(name)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- client helpers ------------------------------------------------------------------------------
    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), capture_output=True, text=True, env=self.env, check=check, timeout=60)

    def sbatch(self, script: Path, *args: str) -> str:
        out = self.run("sbatch", "--parsable", *args, str(script)).stdout.strip()
        return out.split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o`` as a dict (JobState, Restarts, ExitCode, ...); {} when unknown."""
        out = self.run("scontrol", "show", "job", "-o", job_id, check=False)
        if out.returncode:
            return {}
        return dict(re.findall(r"(\w+)=(\S*)", out.stdout))

    def wait(self, job_id: str, done, timeout: float, what: str = "") -> dict[str, str]:
        """Poll the job until ``done(info)``; raises ``TimeoutError`` naming ``what`` and the last state."""
        deadline = time.monotonic() + timeout
        info: dict[str, str] = {}
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if info and done(info):
                return info
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id}: {what or 'condition'} not reached in {timeout:.0f} s; last {info}")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print(__doc__)
        return 2
    cluster = SlurmCluster(Path(argv[1]))
    if argv[0] == "up":
        reason = missing_reason()
        if reason:
            print(reason, file=sys.stderr)
            return 1
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
