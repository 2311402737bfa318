"""Peak memory of a forward pass or a training step, beyond the memory the built model already holds.

Both devices measure the second call: the first one allocates once-only things (kernel caches, library
workspaces, the optimizer state on a training step), which then count as resident, not as the call's cost.
Training-step growth thus covers activations, gradients and temporaries; AdamW's state adds 2x the
parameter bytes on top and is not in the number.

* CUDA: ``torch.cuda.reset_peak_memory_stats`` before the call, then ``max_memory_allocated`` (tensors)
  and ``max_memory_reserved`` (what the caching allocator took from the driver). ``growth`` is the peak
  allocated minus what was allocated before the call (weights, inputs).
* CPU: the growth of the process's peak resident set (``VmHWM`` in ``/proc/self/status``) over its
  resident set just before the call, after resetting the peak with ``/proc/self/clear_refs`` (Linux).
  A process that already ran the model keeps freed memory in its heap and under-reports, so the profiler
  measures CPU memory in a fresh subprocess (``run_cpu_memory_worker``) that forks one child per entry:
  the child builds the model, runs one warm-up call, releases the heap (``malloc_trim``) and measures the
  next inference call; then the same for a training step. The worker runs with glibc's mmap threshold
  fixed at 128 KiB (``MALLOC_MMAP_THRESHOLD_``), so large tensors are returned to the OS when freed and
  the peak follows the live tensors (reproducible to ~0.1 MiB, independent of the order of entries). Where the
  peak cannot be reset (not Linux) ``ru_maxrss`` is used and the method says so; it only sees growth
  above the process's earlier peak.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import torch


MMAP_THRESHOLD = 128 * 1024


@dataclass(frozen=True)
class MemoryStats:
    """Peak memory of one call; bytes. ``method`` says how it was measured."""

    growth_bytes: int
    method: str
    max_allocated_bytes: int | None = None  # CUDA only
    max_reserved_bytes: int | None = None  # CUDA only


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5": reset the peak RSS (VmHWM) to the current RSS; Linux >= 4.0
        return True
    except OSError:
        return False


def release_heap() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), if possible."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def cpu_peak_growth(fn: Callable[[], object]) -> MemoryStats:
    """Peak resident-set growth of this process while ``fn`` runs (see the module docstring)."""
    release_heap()
    if _reset_peak_rss() and _status_kib("VmRSS") is not None:
        before = _status_kib("VmRSS") or 0
        fn()
        peak = _status_kib("VmHWM") or before
        return MemoryStats(max(peak - before, 0) * 1024, "cpu: VmHWM - VmRSS (peak reset via clear_refs)")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return MemoryStats(max(after - before, 0) * scale, "cpu: ru_maxrss growth (lower bound)")


def cuda_peak(fn: Callable[[], object], device: torch.device | str = "cuda") -> MemoryStats:
    """Peak CUDA memory of ``fn``: allocated growth, plus absolute allocated and reserved peaks."""
    gc.collect()
    fn()  # warm-up: cuDNN/cuBLAS workspaces and autotuning are allocated here and stay resident
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return MemoryStats(peak - before, "cuda: max_memory_allocated - memory_allocated before",
                       peak, torch.cuda.max_memory_reserved(device))


def run_cpu_memory_worker(requests: list[dict], timeout: float = 1800.0) -> list[dict]:
    """Measure CPU memory of entries in a fresh Python process (one forked child per entry).

    Each request holds the entry (``spec``, ``overrides``, ``kwargs``) and the settings (see
    ``spmkit.profile.runner``); each result is ``{"inference": ..., "train": ...}`` or ``{"error": ...}``.
    Raises ``RuntimeError`` with the worker's last error line when the worker itself fails.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    # glibc: a fixed mmap threshold (the default one grows as memory is freed) makes every block over
    # 128 KiB its own mapping, returned at free, so the peak RSS follows the live tensors and not how much
    # freed memory the allocator kept; without it the same model measured 35 or 54 MiB from run to run.
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    proc = subprocess.run([sys.executable, "-m", "spmkit.profile.memory_worker"], input=json.dumps(requests),
                          capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"memory worker failed: {lines[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
