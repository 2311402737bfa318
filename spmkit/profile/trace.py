"""``torch.profiler`` traces: a TensorBoard trace (``tensorboard_trace_handler``) and a Chrome trace JSON.

View the TensorBoard one with ``tensorboard --logdir DIR`` after ``pip install torch-tb-profiler`` (the
``trace`` extra); open the ``*.chrome.json`` file in https://ui.perfetto.dev or ``chrome://tracing``.
A short operator table (``*.ops.txt``, sorted by self time) is written too: the quickest way to see which
operator makes one model slower than another.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def trace_files(out_dir: str | Path, name: str) -> tuple[Path, Path]:
    """The Chrome trace and ops table :func:`record_trace` writes for ``name`` in ``out_dir``."""
    slug = _slug(name)
    return Path(out_dir) / f"{slug}.chrome.json", Path(out_dir) / f"{slug}.ops.txt"


def record_trace(fn: Callable[[], object], out_dir: str | Path, name: str, *, device: str = "cpu",
                 wait: int = 1, warmup: int = 1, active: int = 3, row_limit: int = 30,
                 outputs=None) -> dict[str, Path]:
    """Profile ``wait + warmup + active`` calls of ``fn``; returns the paths written (tensorboard dir,
    chrome trace, ops table). The trace and table are written atomically through ``outputs`` (a
    ``spmkit.io.output_paths.Outputs``; see :func:`trace_files` to claim them first); the TensorBoard files
    have new, time-stamped names."""
    from spmkit.io.output_paths import Outputs

    outs = outputs if outputs is not None else Outputs("profile")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    slug = _slug(name)
    chrome, table = trace_files(out, name)
    tb_dir = out / "tensorboard"
    tb_handler = tensorboard_trace_handler(str(tb_dir), worker_name=slug)
    activities = [ProfilerActivity.CPU]
    cuda = torch.device(device).type == "cuda"
    if cuda:
        activities.append(ProfilerActivity.CUDA)

    def on_ready(prof: profile) -> None:
        tb_handler(prof)  # writes Chrome-trace JSON itself; a trace can be exported once, so copy that file
        written = max(tb_dir.glob(f"{slug}.*.pt.trace.json"), key=lambda p: p.stat().st_mtime)
        sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        with outs:
            outs.write_bytes(chrome, written.read_bytes())
            outs.write_text(table, prof.key_averages(group_by_input_shape=False).table(sort_by=sort,
                                                                                        row_limit=row_limit))

    with profile(activities=activities, schedule=schedule(wait=wait, warmup=warmup, active=active),
                 on_trace_ready=on_ready, record_shapes=True, profile_memory=True) as prof:
        for _ in range(wait + warmup + active):
            fn()
            if cuda:
                torch.cuda.synchronize(device)
            prof.step()
    return {"tensorboard": tb_dir, "chrome": chrome, "ops": table}
