"""One lock module for run folders and sweeps: holder pid, refusal, probe without writing, children keep it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spmkit.io.file_lock import FileLock, LockBusy

HOLD = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); " \
       "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'4242'); print('held', flush=True); time.sleep(60)"


def test_a_lock_held_by_another_process_names_its_pid_and_the_probe_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy) as busy:
            FileLock(path).acquire()
        assert busy.value.holder == "4242"
        assert FileLock(path).held_elsewhere() == "4242"
        assert path.read_text() == "4242"  # neither the refusal nor the probe touched the holder's file
    finally:
        holder.kill()
        holder.wait()
    assert FileLock(path).held_elsewhere() is None
    with FileLock(path) as lock:  # free once the holder is gone (no stale lock), and ours names us
        assert path.read_text() == str(os.getpid()) and lock.fd is not None
    assert FileLock(tmp_path / "none").held_elsewhere() is None and not (tmp_path / "none").exists()


def test_run_folders_and_sweeps_share_the_lock(tmp_path: Path) -> None:
    from spmkit.train.run_dir import LOCK, RunDir, probe_lock
    from spmkit.sweep.lock import SweepLock

    assert issubclass(SweepLock, FileLock)
    run = RunDir(tmp_path / "run")
    run.acquire()
    try:
        assert (tmp_path / "run" / LOCK).read_text() == str(os.getpid())
        code = ("import sys; from spmkit.train.run_dir import probe_lock; from pathlib import Path\n"
                "try:\n    probe_lock(Path(sys.argv[1]))\nexcept Exception as e:\n    print(e)")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}).stdout
        assert f"another spmkit process (pid {os.getpid()} holds" in out
    finally:
        run.release()
    probe_lock(tmp_path / "run")  # free again
