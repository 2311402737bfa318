"""Latency and memory against input resolution, and the PNG plot of it.

Dense tasks run backbones at 512-1024 px; attention that is global (PVT's spatial-reduction attention
grows with the square of the token count) and merging layers show their scaling only there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from spmkit.profile.entries import Entry
from spmkit.profile.runner import ProfileConfig, ProfileResult, profile_entries


def sweep_resolution(entries: Sequence[Entry], sizes: Sequence[int], config: ProfileConfig,
                     progress=None) -> list[ProfileResult]:
    """Profile every entry at every square size (inference only: latency, throughput, memory, FLOPs)."""
    cfg = ProfileConfig(**{**config.__dict__, "input_sizes": tuple((s, s) for s in sizes), "train": False,
                           "breakdown": False})
    return profile_entries(entries, cfg, progress)


def plot_sweep(results: Sequence[ProfileResult], path: str | Path, title: str = "", outputs=None) -> Path:
    """Write a two-panel PNG: batch-1 latency and peak memory against input size, one line per entry
    (atomically, through ``outputs``, a ``spmkit.io.output_paths.Outputs`` that claimed ``path``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.name for r in results))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in names:
        rows = sorted((r for r in results if r.name == name), key=lambda r: r.input_size[0])
        xs = [r.input_size[0] for r in rows]
        ax_t.plot(xs, [r.latency_ms for r in rows], marker="o", label=name)
        mem = [(x, r.peak_memory_bytes / 2**20) for x, r in zip(xs, rows) if r.peak_memory_bytes is not None]
        if mem:
            ax_m.plot(*zip(*mem), marker="o", label=name)
    device = results[0].device if results else ""
    batch = results[0].batch_size if results else 0
    ax_t.set(xlabel="input size (px)", ylabel="latency, batch 1 (ms, median)", title=f"latency on {device}")
    ax_m.set(xlabel="input size (px)", ylabel="peak memory growth (MiB)",
             title=f"peak memory, batch {batch}")
    if not ax_m.lines:
        ax_m.text(0.5, 0.5, "memory not measured", ha="center", va="center", transform=ax_m.transAxes)
    for ax in (ax_t, ax_m):
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    from spmkit.io.output_paths import Outputs

    outs = outputs if outputs is not None else Outputs("profile")
    try:
        with outs:
            outs.write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)
    return Path(path)
