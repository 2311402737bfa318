"""PNG curves of a run folder (loss, the task's metrics, learning rate) with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

from spmkit.train.run_dir import read_jsonl as _read_jsonl
from spmkit.errors import DataError

#: (file name, metrics.jsonl keys, y label); a panel is written when the run has any of its keys, so each
#: task gets its own: classification accuracy, detection box / mask AP, segmentation mIoU
PANELS = (
    ("loss", ("train_loss", "val_loss"), "loss"),
    ("accuracy", ("top1", "top5", "ema_top1"), "accuracy (%)"),
    ("ap", ("bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50", "ema_bbox_AP", "ema_segm_AP"), "COCO AP (%)"),
    ("miou", ("mIoU", "mAcc", "ema_mIoU"), "mIoU / mean accuracy (%)"),
    ("lr", ("lr",), "learning rate"),
)


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None, force: bool = False) -> list[Path]:
    """Write ``loss.png``, the task's metric panel (``accuracy.png``, ``ap.png`` or ``miou.png``) and
    ``lr.png`` (those with data) and return their paths.

    Epoch metrics come from ``metrics.jsonl``; the lr panel uses the per-step ``steps.jsonl`` (one row per
    optimizer step) when present, else the epoch rows. A PNG of that name that ``spmkit plot`` did not write
    is replaced only with ``force``; each is written atomically (``spmkit.io.output_paths``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    rows = _read_jsonl(run / "metrics.jsonl")
    if not rows:
        raise DataError(f"{run} has no metrics.jsonl rows to plot (is it an spmkit run folder?).")
    steps = _read_jsonl(run / "steps.jsonl")
    out = Path(out_dir) if out_dir is not None else run
    panels = []  # (name, series per key, ylabel): only panels with data are drawn
    for name, keys, ylabel in PANELS:
        if name == "lr" and steps:
            pts = [(s["step"], s["lr"]) for s in steps
                   if isinstance(s.get("step"), (int, float)) and isinstance(s.get("lr"), (int, float))]
            panels.append((name, [("lr", pts)], ylabel, "optimizer step"))
            continue
        series = [(key, [(r["epoch"], r[key]) for r in rows
                         if isinstance(r.get(key), (int, float)) and isinstance(r.get("epoch"), (int, float))])
                  for key in keys]
        series = [(k, pts) for k, pts in series if pts]
        if series:
            panels.append((name, series, ylabel, "epoch"))
    from spmkit.io.output_paths import Outputs

    outs = Outputs("plot", inputs=[run / "metrics.jsonl", run / "steps.jsonl"], force=force)
    paths = [outs.claim(out / f"{name}.png") for name, *_ in panels]  # all checked before any is written
    written: list[Path] = []
    with outs:
        for path, (name, series, ylabel, xlabel) in zip(paths, panels):
            fig, ax = plt.subplots(figsize=(6, 4))
            for key, pts in series:
                if xlabel == "epoch":
                    ax.plot(*zip(*pts), marker="o", label=key)
                else:
                    ax.plot(*(zip(*pts) if pts else ([], [])), label=key)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.set_title(f"{run.name}: {name}")
            ax.grid(alpha=0.3)
            ax.legend()
            fig.tight_layout()
            try:
                outs.write(path, lambda f: fig.savefig(f, format="png", dpi=100))
            finally:
                plt.close(fig)
            written.append(path)
    return written
