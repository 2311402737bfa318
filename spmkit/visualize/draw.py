"""Rows of panels to one PNG with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spmkit.visualize.kind import Panel, Row

if TYPE_CHECKING:
    from spmkit.io.output_paths import Outputs


def _stretch(heat: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour stretch of a ``[h, w]`` map to ``hw`` (each cell covers its share of the image)."""
    h, w = heat.shape
    ys = np.minimum((np.arange(hw[0]) * h) // hw[0], h - 1)
    xs = np.minimum((np.arange(hw[1]) * w) // hw[1], w - 1)
    return heat[ys][:, xs]


def _draw_panel(ax, p: Panel) -> None:
    import matplotlib.pyplot as plt

    ax.set_axis_off()
    ax.set_title(p.title, fontsize=8)
    if p.image is not None:
        ax.imshow(p.image, interpolation="nearest")
        hw = p.image.shape[:2]
    elif p.heat is not None:
        hw = p.heat.shape
    else:
        return
    if p.heat is not None:
        heat = _stretch(p.heat, hw) if p.heat.shape != tuple(hw) else p.heat
        ax.imshow(heat, cmap=p.cmap, alpha=0.6 if p.image is not None else 1.0, interpolation="nearest", vmin=p.vmin)
    if p.points is not None and len(p.points):
        ax.scatter(p.points[:, 1], p.points[:, 0], s=2 if len(p.points) < 1000 else 0.5, c="cyan", linewidths=0)
    if p.highlight is not None and len(p.highlight):
        ax.scatter(p.highlight[:, 1], p.highlight[:, 0], s=30, c="red", marker="x", linewidths=1.5)
    if p.marker is not None:
        ax.scatter([p.marker[1]], [p.marker[0]], s=40, c="white", marker="+", linewidths=1.5)
        for r, style in zip(p.circles, ("-", "--", ":")):
            ax.add_patch(plt.Circle((p.marker[1], p.marker[0]), r, fill=False, color="white", ls=style, lw=1))
    ax.set_xlim(-0.5, hw[1] - 0.5)
    ax.set_ylim(hw[0] - 0.5, -0.5)


def save_rows(rows: list[Row], output: str | Path, title: str = "", outputs: "Outputs | None" = None) -> Path:
    """Draw ``rows`` (one panel per column) and write them as a PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = max(len(r.panels) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(max(2.6 * ncols, 5.5), 2.7 * len(rows) + 0.5),
                             squeeze=False, layout="constrained")
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            if c < len(row.panels):
                _draw_panel(ax, row.panels[c])
            else:
                ax.set_axis_off()
        label = "\n".join(ln if len(ln) <= 32 else "..." + ln[-29:] for ln in row.label.splitlines())
        axes[r][0].text(-0.08, 0.5, label, transform=axes[r][0].transAxes, rotation=90, va="center",
                        ha="right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    from spmkit.io.output_paths import Outputs

    outs = outputs if outputs is not None else Outputs("visualize")
    try:
        with outs:  # atomic, recorded as spmkit's (``outputs`` claimed the path; else it is checked here)
            outs.write(output, lambda f: fig.savefig(f, format="png", dpi=90))
    finally:
        plt.close(fig)
    return Path(output)
