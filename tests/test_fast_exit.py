"""``spmkit`` from the shell skips the interpreter's teardown (spmkit.cli.fast_exit) without losing anything:
the exit code, the atexit handlers, every open file's buffered tail and the standard streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spmkit.cli.fast_exit import exit_code


def _py(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_exit_code_follows_pythons_rules() -> None:
    assert exit_code(None) == 0 and exit_code(2) == 2 and exit_code(75) == 75
    assert exit_code("a message") == 1 and exit_code(True) == 1


@pytest.mark.parametrize("full", ["", "1"])
def test_files_handlers_and_streams_survive_the_fast_exit(tmp_path: Path, full: str) -> None:
    target, marker = tmp_path / "left_open.txt", tmp_path / "atexit.txt"
    code = (f"import atexit, sys\n"
            f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
            f"f = open({str(target)!r}, 'w', buffering=1 << 20)\n"
            f"f.write('x' * 5000)\n"  # stays in the buffer: nobody flushes or closes it
            f"sys.stdout.write('out without newline')\n"
            f"from spmkit.cli.fast_exit import exit_now\n"
            f"exit_now(7)\n")
    r = _py(code, {"SPMKIT_FULL_EXIT": full})
    assert r.returncode == 7, r.stderr
    assert r.stdout == "out without newline"
    assert marker.read_text() == "ran"
    assert target.read_text() == "x" * 5000


def test_the_command_line_keeps_its_exit_codes_and_output(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "spmkit", "build", "tiny_pvt", "--json"], capture_output=True,
                        text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["params"] > 0
    bad = subprocess.run([sys.executable, "-m", "spmkit", "build", "tiny_pvtt"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "tiny_pvt" in bad.stderr and "Traceback" not in bad.stderr


def test_loader_workers_that_ignore_sigterm_do_not_hold_the_exit() -> None:
    """Data-loader workers ignore SIGTERM (it is the main process's, under SLURM); a loader still referenced
    at the exit (here a module global) must not make the process wait for them."""
    code = ("import signal, torch\n"
            "from torch.utils.data import DataLoader\n"
            "def init(_):\n"
            "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "loader = DataLoader(list(range(8)), batch_size=2, num_workers=1, persistent_workers=True,\n"
            "                    worker_init_fn=init)\n"
            "it = iter(loader); next(it)\n"
            "from spmkit.cli.fast_exit import exit_now\n"
            "exit_now(0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
