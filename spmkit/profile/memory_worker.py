"""Subprocess entry: ``python -m spmkit.profile.memory_worker`` < JSON list of requests > JSON list of results.

The worker imports torch (and the model libraries) once, runs no operator itself, and forks one child per
request, so every entry is measured in a process whose heap has never held another model. The child builds
the entry and measures CPU peak-RSS growth of one inference call at the request's batch size, then of one
training step, each after one warm-up call and with freed heap returned to the OS. Where ``os.fork`` is
missing each request runs in turn in this process (the first one is exact, later ones may under-report).
See ``spmkit.profile.memory``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
import sys
import traceback

import torch


def measure(req: dict) -> dict:
    from spmkit.profile.entries import resolve_entry
    from spmkit.profile.memory import cpu_peak_growth
    from spmkit.profile.steps import StepOptions, inference_call, make_input, prepare_model, train_call

    if req.get("threads"):
        torch.set_num_threads(int(req["threads"]))
    entry = resolve_entry(req["spec"], req.get("overrides", ()), kwargs=req.get("kwargs") or None)
    opts = StepOptions("cpu", req.get("amp"), bool(req.get("channels_last")), False)
    model = prepare_model(entry.build(), opts).eval()
    x = make_input(int(req["batch_size"]), tuple(req["input_size"]), opts, int(req.get("in_chans", 3)))
    infer = inference_call(model, x, opts)
    infer()  # warm-up: one-time allocations (kernel caches, thread pools) are not the model's cost
    note = "; fresh process"
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        note += f", glibc mmap threshold {int(os.environ['MALLOC_MMAP_THRESHOLD_']) // 1024} KiB"
    result = {"inference": _noted(cpu_peak_growth(infer), note), "train": None}
    if req.get("train"):
        model.train()
        step = train_call(model, x, opts)
        step()  # warm-up; creates the optimizer state, which then counts as resident, not as growth
        result["train"] = _noted(cpu_peak_growth(step), note)
    return result


def _noted(stats, note: str) -> dict:
    d = asdict(stats)
    d["method"] += note
    return d


def _guarded(req: dict) -> dict:
    try:
        return measure(req)
    except Exception as exc:  # reported to the parent as one line
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}"}


def _forked(req: dict) -> dict:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        with os.fdopen(write_fd, "w") as out:
            out.write(json.dumps(_guarded(req)))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as inp:
        text = inp.read()
    _, status = os.waitpid(pid, 0)
    if not text:
        return {"error": f"measuring process died (wait status {status})"}
    return json.loads(text)


def main() -> None:
    requests = json.loads(sys.stdin.read())
    import spmkit.profile.entries  # noqa: F401  (import model libraries once, before forking)

    if any(str(r.get("spec", "")).startswith("timm:") for r in requests):
        import timm  # noqa: F401
    run = _forked if hasattr(os, "fork") else _guarded
    print(json.dumps([run(r) for r in requests]))


if __name__ == "__main__":
    main()
