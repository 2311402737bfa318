"""The run folder: resolved blueprint and recipe, versions, metrics (JSONL, CSV, TensorBoard), checkpoints.

Layout::

    RUN/blueprint.yaml  recipe.yaml  run.json (task, data, command, versions)
    RUN/metrics.jsonl   metrics.csv   steps.jsonl   tb/events.*
    RUN/last.pt  best.pt

Only rank 0 writes. ``metrics.jsonl`` has one object per finished epoch; ``steps.jsonl`` one per logged
optimizer step (step, epoch, lr, loss).
"""

from __future__ import annotations

import csv
import json
import platform
import sys
from pathlib import Path
from typing import Any

import yaml


def versions() -> dict[str, str]:
    import timm
    import torch

    import spmkit

    return {"spmkit": str(spmkit.__version__), "torch": str(torch.__version__), "timm": str(timm.__version__),
            "python": platform.python_version()}


class RunDir:
    """Writes the files of one run folder (a no-op object on ranks other than 0)."""

    def __init__(self, path: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._tb = None
        self._tensorboard = tensorboard
        if enabled:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def write_config(self, *, task: str, blueprint: dict[str, Any] | None, recipe: dict[str, Any],
                     info: dict[str, Any], data: str, model: str, world_size: int) -> None:
        if not self.enabled:
            return
        if blueprint is not None:
            (self.path / "blueprint.yaml").write_text(yaml.safe_dump(blueprint, sort_keys=False))
        (self.path / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
        run = {"task": task, "model": model, "data": data, "world_size": world_size, "command": sys.argv,
               "versions": versions(), "data_info": {k: v for k, v in info.items() if k != "classes"}}
        (self.path / "run.json").write_text(json.dumps(run, indent=2))

    def truncate_after(self, epoch: int, step: int) -> None:
        """Drop rows written after the checkpoint being resumed (a killed run may have logged more)."""
        if not self.enabled:
            return
        for name, key, limit in (("metrics.jsonl", "epoch", epoch), ("steps.jsonl", "step", step)):
            p = self.path / name
            if p.exists():
                rows = [ln for ln in p.read_text().splitlines() if ln.strip()]
                keep = [ln for ln in rows if json.loads(ln)[key] <= limit]
                p.write_text("".join(ln + "\n" for ln in keep))
        self._rewrite_csv()

    def log_step(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path / "steps.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        tb = self._writer()
        if tb is not None:
            for k in ("lr", "loss"):
                if k in row:
                    tb.add_scalar(f"step/{k}", row[k], row["step"])

    def log_epoch(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        self._rewrite_csv()
        tb = self._writer()
        if tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    tb.add_scalar(f"epoch/{k}", v, row["epoch"])
            tb.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]

    def _rewrite_csv(self) -> None:
        rows = self.read_metrics()
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        with open(self.path / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    def _writer(self):
        if not self._tensorboard:
            return None
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: JSONL/CSV only
                self._tensorboard = False
                return None
            self._tb = SummaryWriter(str(self.path / "tb"))
        return self._tb

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
