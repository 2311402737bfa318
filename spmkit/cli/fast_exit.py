"""Leave the process without the interpreter's teardown once the command's work is done.

With torch, torchvision and timm loaded, Python's finalisation (clearing thousands of modules and their
objects) takes about a second after the last line of a command -- more than a short training run spends on
its checkpoints. ``spmkit`` run from the shell (``spmkit ...`` / ``python -m spmkit ...``) therefore runs
the ``atexit`` handlers (logging, loader workers, TensorBoard, coverage), flushes every open file and the
standard streams, and ends with ``os._exit``. Library calls (``spmkit.cli.app.main`` from Python, tests) are
not affected. ``SPMKIT_FULL_EXIT=1`` restores the ordinary exit.
"""

from __future__ import annotations

import atexit
import gc
import io
import os
import sys
from typing import NoReturn

ENV = "SPMKIT_FULL_EXIT"


def exit_code(code: object) -> int:
    """``SystemExit.code`` as the process's exit status (Python's rules: None -> 0, text -> 1 after printing)."""
    if code is None:
        return 0
    if isinstance(code, bool) or not isinstance(code, int):
        print(code, file=sys.stderr)
        return 1
    return code & 0xFF


def flush_open_files() -> None:
    """Flush every open writable Python file object (a file left to the garbage collector would lose its
    buffered tail under ``os._exit``)."""
    base = io.IOBase.__mro__[1]  # the C ``_io._IOBase`` every file object derives from
    for obj in gc.get_objects():
        if base in type(obj).__mro__:  # type(), not isinstance(): no attribute lookups on lazy proxies
            try:
                if not obj.closed and obj.writable():
                    obj.flush()
            except Exception:  # noqa: BLE001 - a broken pipe or a closed descriptor: nothing to keep
                pass


def stop_daemon_children(grace_s: float = 1.0) -> None:
    """End the daemonic ``multiprocessing`` children still alive (data-loader workers whose loader was not
    collected), as the interpreter's exit would: first ``gc.collect()``, which lets loaders shut their workers
    down themselves, then SIGTERM, then SIGKILL after ``grace_s`` (loader workers ignore SIGTERM: under SLURM
    it is their main process's to act on, see ``spmkit.train.preemption``)."""
    import multiprocessing
    import time

    gc.collect()
    children = [p for p in multiprocessing.active_children() if p.daemon]
    for p in children:
        p.terminate()
    deadline = time.monotonic() + grace_s
    for p in children:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(1.0)


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` after the ``atexit`` handlers and flushing, skipping the teardown."""
    if os.environ.get(ENV, "") not in ("", "0"):
        sys.exit(code)
    try:
        stop_daemon_children()
    except Exception:  # noqa: BLE001 - the exit goes on; multiprocessing's own handler follows
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - as at a normal exit, a failing handler does not change the code
        pass
    flush_open_files()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)
