"""Latency statistics: warm-up, interleaved repeats, median and p90.

Several callables are timed round-robin (the order rotates every round) so that machine drift, thermal
throttling or a neighbour's load hits every entry alike; their *ratios* are what survives a noisy machine.
On CUDA each call is bracketed by CUDA events after a device synchronisation, so the time is the GPU's,
not the launch's. What this cannot remove: noise larger than the gap between entries; repeat the run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class TimingStats:
    """Summary of timed calls, in milliseconds."""

    samples_ms: tuple[float, ...]
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    std_ms: float

    @property
    def count(self) -> int:
        return len(self.samples_ms)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        raise ValueError("no samples")
    pos = q * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_s: Sequence[float]) -> TimingStats:
    """Statistics of durations given in seconds."""
    ms = [s * 1e3 for s in samples_s]
    ordered = sorted(ms)
    mean = sum(ms) / len(ms)
    std = math.sqrt(sum((m - mean) ** 2 for m in ms) / len(ms))
    return TimingStats(tuple(ms), quantile(ordered, 0.5), quantile(ordered, 0.9), mean, ordered[0], std)


def time_once(fn: Callable[[], object], device: torch.device | str = "cpu",
              clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds one call of ``fn`` takes; on CUDA measured with events after synchronising."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = clock()
    fn()
    return clock() - t0


def time_interleaved(fns: Sequence[Callable[[], object]], *, warmup: int, repeats: int,
                     device: torch.device | str = "cpu", clock: Callable[[], float] = time.perf_counter,
                     max_seconds: float | None = None, min_repeats: int = 5) -> list[TimingStats]:
    """Time each callable ``repeats`` times, round-robin, after ``warmup`` untimed calls each.

    With ``max_seconds``, rounds stop early once the timed calls of all callables together took that long
    and at least ``min_repeats`` rounds ran (slow models on a CPU); every callable keeps the same count.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    n = len(fns)
    for _ in range(max(warmup, 0)):
        for fn in fns:
            fn()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    samples: list[list[float]] = [[] for _ in fns]
    spent = 0.0
    for r in range(repeats):
        for k in range(n):
            i = (r + k) % n  # rotate the order so no entry always runs first (after a pause) or last
            samples[i].append(time_once(fns[i], device, clock))
            spent += samples[i][-1]
        if max_seconds is not None and spent >= max_seconds and r + 1 >= min(min_repeats, repeats):
            break
    return [summarize(s) for s in samples]
