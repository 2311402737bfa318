"""PNG plots of a sweep: a metric (top-1, AP, mIoU) against MACs, latency and parameters, every point
labelled with its varied values and the Pareto front (no other variant is both cheaper and better) marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

#: x axes: (table column, axis label, scale to the shown unit, file name part)
X_AXES = (("macs", "GMACs", 1e-9, "gmacs"), ("latency_ms", "latency, batch 1 (ms)", 1.0, "latency"),
          ("params", "parameters (M)", 1e-6, "params"))


def pareto_front(points: Sequence[tuple[float, float]], maximize: bool = True) -> list[int]:
    """Indices of the points no other point dominates (lower or equal x and better or equal y, one strictly)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = False
        for j, (x2, y2) in enumerate(points):
            if j == i:
                continue
            better = y2 >= y if maximize else y2 <= y
            strictly = x2 < x or (y2 > y if maximize else y2 < y)
            if x2 <= x and better and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda k: points[k][0])


def _short(row: dict[str, Any], axes: Sequence[str]) -> str:
    return ", ".join(str(row.get(a)) for a in axes) or str(row["variant"])


def plot_names(metric: str) -> list[str]:
    """The file names :func:`plot_sweep` may write for ``metric``."""
    return [f"{metric}_vs_{part}.png" for *_, part in X_AXES]


def plot_sweep(rows: Sequence[dict[str, Any]], axes: Sequence[str], metric: str, folder: Path, title: str,
               maximize: bool = True, outputs=None) -> list[Path]:
    """One PNG per x axis with data; rows without ``metric`` are left out. Returns the written paths, written
    atomically through ``outputs`` (a ``spmkit.io.output_paths.Outputs`` that claimed them)."""
    from spmkit.io.output_paths import Outputs

    outs = outputs if outputs is not None else Outputs("sweep")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for col, xlabel, scale, part in X_AXES:
        have = [r for r in rows if r.get(col) is not None and r.get(metric) is not None]
        if not have:
            continue
        if col == "macs" and max(r[col] for r in have) < 1e8:  # tiny models: MMACs keeps the ticks readable
            xlabel, scale = "MMACs", 1e-6
        pts = [(r[col] * scale, r[metric], r) for r in have]
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        xy = [(x, y) for x, y, _ in pts]
        front = pareto_front(xy, maximize)
        others = [k for k in range(len(pts)) if k not in front]
        ax.scatter([xy[k][0] for k in others], [xy[k][1] for k in others], color="tab:blue", label="variant", zorder=3)
        ax.plot([xy[k][0] for k in front], [xy[k][1] for k in front], color="tab:red", marker="*", markersize=12,
                linestyle="--", label="Pareto front", zorder=4)
        for x, y, r in pts:
            std = r.get(metric + "_std")
            if std:
                ax.errorbar([x], [y], yerr=[std], color="gray", capsize=3, zorder=2)
            ax.annotate(_short(r, axes), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set(xlabel=xlabel, ylabel=metric, title=f"{title}: {metric} against {xlabel.split(' (')[0]}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.margins(0.15)
        fig.tight_layout()
        path = folder / f"{metric}_vs_{part}.png"
        try:
            with outs:
                outs.write(path, lambda f: fig.savefig(f, format="png", dpi=120))
        finally:
            plt.close(fig)
        written.append(path)
    return written
