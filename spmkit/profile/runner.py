"""Profile several entries side by side: parameters, FLOPs, latency, throughput, training step, memory.

All entries of one input size are built up front and every timed measurement runs them round-robin
(``spmkit.profile.timing.time_interleaved``). Order per input size: FLOPs (batch 1, forward), latency at
batch 1, throughput at ``batch_size``, training step at ``batch_size``, memory, per-module breakdown.
"""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch

from spmkit.profile.breakdown import BreakdownRow, module_breakdown
from spmkit.profile.entries import Entry
from spmkit.profile.errors import ProfileError
from spmkit.profile.flops import count_flops
from spmkit.profile.memory import MemoryStats, cpu_peak_growth, cuda_peak, run_cpu_memory_worker
from spmkit.profile.steps import (StepOptions, check_device, inference_call, make_input, prepare_model,
                                  train_call)
from spmkit.profile.timing import TimingStats, time_interleaved


@dataclass(frozen=True)
class ProfileConfig:
    """What to measure and how. ``input_sizes`` empty: each entry at its own native size."""

    device: str = "cpu"
    batch_size: int = 8
    input_sizes: tuple[tuple[int, int], ...] = ()
    amp: str | None = None
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None
    warmup: int = 3
    repeats: int = 20
    max_seconds: float | None = None  # per measurement, all entries together; at least 5 rounds still run
    train: bool = True
    memory: bool = True
    breakdown: bool = False
    memory_subprocess: bool = True  # CPU: measure in a fresh process when the entry can be rebuilt there

    def options(self) -> StepOptions:
        return StepOptions(self.device, self.amp, self.channels_last, self.compile)


@dataclass
class ProfileResult:
    """One entry at one input size. Times in ms, memory in bytes, ``None`` where not measured."""

    name: str
    entry: str | None
    device: str
    input_size: tuple[int, int]
    batch_size: int
    params: int
    flops: int
    macs: int
    latency_ms: float
    latency_p90_ms: float
    batch_latency_ms: float
    batch_latency_p90_ms: float
    throughput: float
    train_step_ms: float | None = None
    train_step_p90_ms: float | None = None
    train_throughput: float | None = None
    peak_memory_bytes: int | None = None
    train_peak_memory_bytes: int | None = None
    max_allocated_bytes: int | None = None
    max_reserved_bytes: int | None = None
    train_max_allocated_bytes: int | None = None
    train_max_reserved_bytes: int | None = None
    memory_method: str | None = None
    amp: str | None = None
    channels_last: bool = False
    compiled: bool = False
    threads: int = 1
    repeats: int = 0  # timed batch-1 calls actually made (fewer than asked when max_seconds ran out)
    breakdown: list[BreakdownRow] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["gmacs"] = self.macs / 1e9
        return d


def _check(config: ProfileConfig) -> torch.device:
    dev = check_device(config.device)
    if config.batch_size < 1:
        raise ProfileError(f"--batch-size must be at least 1, got {config.batch_size}.")
    if config.repeats < 1 or config.warmup < 0:
        raise ProfileError("--repeats must be at least 1 and --warmup at least 0.")
    if config.amp not in (None, "bf16", "fp16"):
        raise ProfileError(f"--amp {config.amp!r}: choose bf16 or fp16.")
    for h, w in config.input_sizes:
        if h < 1 or w < 1:
            raise ProfileError(f"input size {h}x{w}: sizes must be positive.")
    if config.threads is not None and config.threads < 1:
        raise ProfileError(f"--threads must be at least 1, got {config.threads}.")
    return dev


def _memory_request(entry: Entry, size: tuple[int, int], config: ProfileConfig) -> dict:
    return entry.request() | {
        "in_chans": entry.in_chans, "input_size": list(size), "batch_size": config.batch_size, "amp": config.amp,
        "channels_last": config.channels_last, "threads": torch.get_num_threads(), "train": config.train}


def _subprocess_memory(jobs: list[tuple[Entry, tuple[int, int]]], config: ProfileConfig
                       ) -> dict[tuple[int, tuple[int, int]], tuple[MemoryStats, MemoryStats | None]]:
    """CPU memory of every (entry, size) with a rebuildable spec, from one worker process."""
    if not jobs:
        return {}
    try:
        results = run_cpu_memory_worker([_memory_request(e, s, config) for e, s in jobs])
    except RuntimeError as exc:
        raise ProfileError(f"measuring memory failed ({exc}); use --no-memory to skip it.") from exc
    out = {}
    for (entry, size), res in zip(jobs, results):
        if "error" in res:
            raise ProfileError(f"{entry.name}: measuring memory failed ({res['error']}); use --no-memory to skip it.")
        train = MemoryStats(**res["train"]) if res["train"] else None
        out[(id(entry), size)] = (MemoryStats(**res["inference"]), train)
    return out


def _memory(model: torch.nn.Module, size: tuple[int, int], config: ProfileConfig, opts: StepOptions,
            in_chans: int = 3) -> tuple[MemoryStats, MemoryStats | None]:
    """In-process memory: CUDA, or CPU for Python-only entries (a lower bound; see ``memory``)."""
    cuda = opts.device.startswith("cuda")
    peak = (lambda fn: cuda_peak(fn, opts.device)) if cuda else cpu_peak_growth
    model.eval()
    x = make_input(config.batch_size, size, opts, in_chans)
    call = inference_call(model, x, opts)
    if not cuda:
        call()  # cuda_peak warms up itself
    infer = peak(call)
    train = None
    if config.train:
        model.train()
        step = train_call(model, x, opts)
        if not cuda:
            step()
        train = peak(step)
        model.zero_grad(set_to_none=True)
        model.eval()
    if cuda:
        return infer, train
    return (MemoryStats(infer.growth_bytes, infer.method + "; in-process"),
            MemoryStats(train.growth_bytes, train.method + "; in-process") if train else None)


def profile_entries(entries: Sequence[Entry], config: ProfileConfig = ProfileConfig(),
                    progress: Callable[[str], None] | None = None) -> list[ProfileResult]:
    """Measure every entry at every input size; results ordered by input size, then entry."""
    if not entries:
        raise ProfileError("nothing to profile: give at least one entry.")
    dev = _check(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    opts = StepOptions(str(dev), config.amp, config.channels_last, config.compile)
    say = progress or (lambda _msg: None)
    sizes = list(config.input_sizes) or sorted({e.input_size for e in entries}, key=entries_order(entries))
    groups = {size: [e for e in entries if config.input_sizes or e.input_size == size] for size in sizes}
    subprocess_memory = {}
    if config.memory and dev.type == "cpu" and config.memory_subprocess:
        jobs = [(e, size) for size, group in groups.items() for e in group if e.spec is not None]
        say(f"measuring memory of {len(jobs)} model(s) in a fresh process")
        subprocess_memory = _subprocess_memory(jobs, config)
    results: list[ProfileResult] = []
    for size, group in groups.items():
        say(f"building {len(group)} model(s) at {size[0]}x{size[1]}")
        raw = [e.build().eval() for e in group]
        params = [sum(p.numel() for p in m.parameters()) for m in raw]
        flops = [_first_run(e, m, size) for e, m in zip(group, raw)]
        raw = [m.to(dev) for m in raw]
        models = [prepare_model(m, opts) for m in raw]
        chans = {e.in_chans for e in group}
        if len(chans) > 1:
            raise ProfileError(f"entries with different input channels ({sorted(chans)}) cannot share inputs; "
                               "profile them in separate runs.")
        in_chans = chans.pop()
        x1, xb = make_input(1, size, opts, in_chans), make_input(config.batch_size, size, opts, in_chans)
        if config.compile:
            say("compiling (first calls)")
            for e, m in zip(group, models):
                _compile_check(e, inference_call(m, x1, opts))
        say("timing batch-1 latency")
        lat = time_interleaved([inference_call(m, x1, opts) for m in models], warmup=config.warmup,
                               repeats=config.repeats, device=dev, max_seconds=config.max_seconds)
        thr = lat  # batch 1: throughput is 1000 / latency, no second measurement
        if config.batch_size > 1:
            say(f"timing throughput at batch {config.batch_size}")
            thr = time_interleaved([inference_call(m, xb, opts) for m in models], warmup=config.warmup,
                                   repeats=config.repeats, device=dev, max_seconds=config.max_seconds)
        train: list[TimingStats | None] = [None] * len(group)
        if config.train:
            say("timing training steps")
            for m in raw:
                m.train()
            steps = [train_call(m, xb, opts, list(r.parameters())) for m, r in zip(models, raw)]
            train = list(time_interleaved(steps, warmup=max(config.warmup, 1), repeats=config.repeats, device=dev,
                                          max_seconds=config.max_seconds))
            del steps  # drops the optimizers and their state
            for m in raw:
                m.zero_grad(set_to_none=True)
                m.eval()
        for i, entry in enumerate(group):
            res = ProfileResult(
                name=entry.name, entry=entry.spec, device=str(dev), input_size=size,
                batch_size=config.batch_size, params=params[i], flops=flops[i], macs=flops[i] // 2,
                latency_ms=lat[i].median_ms, latency_p90_ms=lat[i].p90_ms, batch_latency_ms=thr[i].median_ms,
                batch_latency_p90_ms=thr[i].p90_ms, throughput=config.batch_size / (thr[i].median_ms / 1e3),
                amp=config.amp, channels_last=config.channels_last, compiled=config.compile,
                threads=torch.get_num_threads(), repeats=lat[i].count)
            if train[i] is not None:
                res.train_step_ms, res.train_step_p90_ms = train[i].median_ms, train[i].p90_ms
                res.train_throughput = config.batch_size / (train[i].median_ms / 1e3)
            if config.memory:
                if (id(entry), size) in subprocess_memory:
                    inf_mem, train_mem = subprocess_memory[(id(entry), size)]
                else:
                    say(f"measuring memory of {entry.name}")
                    inf_mem, train_mem = _memory(raw[i], size, config, opts, entry.in_chans)
                res.peak_memory_bytes, res.memory_method = inf_mem.growth_bytes, inf_mem.method
                res.max_allocated_bytes = inf_mem.max_allocated_bytes
                res.max_reserved_bytes = inf_mem.max_reserved_bytes
                if train_mem is not None:
                    res.train_peak_memory_bytes = train_mem.growth_bytes
                    res.train_max_allocated_bytes = train_mem.max_allocated_bytes
                    res.train_max_reserved_bytes = train_mem.max_reserved_bytes
            if config.breakdown:
                say(f"per-module breakdown of {entry.name}")
                raw[i].eval()
                res.breakdown = module_breakdown(raw[i], x1, repeats=max(config.repeats // 4, 3),
                                                 run=_plain_run(raw[i], x1, opts))
            results.append(res)
        del raw, models
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return results


def _first_run(entry: Entry, model: torch.nn.Module, size: tuple[int, int]) -> int:
    """FLOPs of one batch-1 forward; a model that cannot run at ``size`` is a user error, not a traceback."""
    try:
        return count_flops(model, (1, entry.in_chans, *size)).total_flops
    except (RuntimeError, AssertionError, ValueError) as exc:
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise ProfileError(f"{entry.name} does not run at input {size[0]}x{size[1]}: {msg}. timm references "
                           "often accept only their own size; drop --input-size or pick another.") from exc


def _compile_check(entry: Entry, call: Callable[[], object]) -> None:
    """Run a compiled model once; a compiler failure becomes a user error with what to try instead."""
    try:
        call()
    except Exception as exc:  # torch._dynamo / inductor errors have many types
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ProfileError(f"{entry.name}: torch.compile failed ({type(exc).__name__}: {msg}). Compiling needs "
                           "a C++ compiler on CPU and Triton on GPU; run without --compile.") from exc


def _plain_run(model: torch.nn.Module, x: torch.Tensor, opts: StepOptions) -> Callable[[], object]:
    return inference_call(model, x, StepOptions(opts.device, opts.amp, opts.channels_last, False))


def entries_order(entries: Sequence[Entry]) -> Callable[[tuple[int, int]], int]:
    first = {}
    for i, e in enumerate(entries):
        first.setdefault(e.input_size, i)
    return lambda s: first[s]
