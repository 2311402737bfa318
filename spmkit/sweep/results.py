"""The sweep's table: one row per variant (mean and standard deviation over its seeds), the varied fields as
columns, and the difference of every number to the *baseline*: the first variant of the grid (the first
value of every axis), or the first valid variant when that one is invalid.

Written as ``SWEEP/results.csv`` (full precision) and ``SWEEP/results.md`` (rounded, for reading).
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from spmkit.sweep.cost import MetaCost
from spmkit.sweep.grid import Variant

#: profile columns in the table (ResultRow keys) and how they come from the profiler's fields
PROFILE_COLUMNS = {"latency_ms": "latency_ms", "throughput": "throughput", "train_step_ms": "train_step_ms",
                   "peak_memory_mib": "peak_memory_bytes", "train_peak_memory_mib": "train_peak_memory_bytes"}

#: profile columns that get a delta column (memory growth is too noisy on CPU to difference)
DELTA_PROFILE = ("latency_ms", "throughput", "train_step_ms")


@dataclass
class Table:
    rows: list[dict[str, Any]]
    columns: list[str]
    axes: list[str]
    metrics: list[str]
    baseline: str
    invalid: list[tuple[Variant, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run folder, log path)


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def build_table(variants: Sequence[Variant], invalid: Sequence[tuple[Variant, str]],
                costs: dict[str, MetaCost], profiles: dict[str, dict[str, Any]],
                run_results: dict[int, list[dict[str, Any]]], planned_runs: dict[int, int],
                failed: Sequence[tuple[str, str]] = ()) -> Table:
    """Rows of the valid ``variants``; ``run_results[index]``: the finished runs' results of that variant."""
    axes = list(dict.fromkeys(k for v in [*variants, *(v for v, _ in invalid)] for k, _ in v.values))
    metric_names: list[str] = []
    for results in run_results.values():
        for r in results:
            for k in r.get("metrics", {}):
                if k not in metric_names:
                    metric_names.append(k)
    rows = []
    for v in variants:
        cost = costs[v.blueprint_key]
        row: dict[str, Any] = {"variant": v.label, **dict(v.values), "params": cost.params, "macs": cost.macs,
                               "input_size": f"{cost.input_size[0]}x{cost.input_size[1]}"}
        prof = profiles.get(v.blueprint_key)
        if prof is not None:
            for col, src in PROFILE_COLUMNS.items():
                value = prof.get(src)
                row[col] = value / 2**20 if (value is not None and col.endswith("_mib")) else value
        results = [r for r in run_results.get(v.index, []) if r.get("status") == "ok"]
        planned = planned_runs.get(v.index, 0)
        if planned:
            row["runs"] = len(results)
            row["status"] = "ok" if len(results) == planned else ("incomplete" if results else "failed")
            for name in metric_names:
                values = [r["metrics"][name] for r in results if name in r.get("metrics", {})]
                if values:
                    row[name], row[name + "_std"] = _mean_std(values)
            if results:
                row["train_s"] = statistics.fmean(r.get("train_s", 0.0) for r in results)
        rows.append(row)
    baseline = "the first variant (the first value of every axis)"
    if rows and variants[0].index != 0:
        baseline = f"the first valid variant ({variants[0].label}); the grid's first variant is invalid"
    delta_cols: list[str] = []
    if rows:
        base = rows[0]
        numeric = ["params", "macs", *[c for c in DELTA_PROFILE if c in base], *metric_names]
        for col in numeric:
            if base.get(col) is None:
                continue
            delta_cols.append("delta_" + col)
            for row in rows:
                row["delta_" + col] = row[col] - base[col] if row.get(col) is not None else None
    columns = ["variant", *axes, "params", "macs", "input_size"]
    columns += [c for c in PROFILE_COLUMNS if any(r.get(c) is not None for r in rows)]
    if any("runs" in r for r in rows):
        columns += ["status", "runs"]
        for name in metric_names:
            columns += [name, name + "_std"]
        columns.append("train_s")
    columns += delta_cols
    return Table(rows, columns, axes, metric_names, baseline, list(invalid), list(failed))


def csv_text(table: Table) -> str:
    """The table as CSV text (full precision; empty cells for missing values)."""
    import io

    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=table.columns, extrasaction="ignore")
    w.writeheader()
    for row in table.rows:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in table.columns})
    return buf.getvalue()


def write_csv(table: Table, path: Path) -> Path:
    """Write :func:`csv_text` to ``path`` atomically (no ownership check: the sweep runner checks first)."""
    from spmkit.io.atomic import write_text_atomic

    write_text_atomic(path, csv_text(table))
    return path


def fmt_cell(col: str, value: Any) -> str:
    """A table cell for reading: params in M, MACs in G or M, deltas signed, the rest to two decimals."""
    if value is None or value == "":
        return "-"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "-"
    delta = col.startswith("delta_")
    name = col.removeprefix("delta_")
    sign = "+" if delta else ""
    if name == "params":  # tiny models (tests, docs) in thousands, so that their differences show
        return f"{value / 1e6:{sign}.3f} M" if abs(value) >= 1e6 else f"{value / 1e3:{sign}.1f} K"
    if name == "macs":  # MACs, not parameters: a G or M suffix with the unit
        return f"{value / 1e9:{sign}.3f} GMACs" if abs(value) >= 1e8 else f"{value / 1e6:{sign}.2f} MMACs"
    if name in ("runs",):
        return str(value)
    return f"{value:{sign}.2f}"


def markdown(table: Table, title: str, command: str | None = None) -> str:
    """The table as Markdown: metrics as mean ± std, deltas to the baseline, then skipped and failed variants."""
    shown = [c for c in table.columns if not c.endswith("_std") and c not in ("train_s",)]
    lines = [f"# {title}", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += [f"Deltas (Δ) are against {table.baseline}. Metrics are the mean ± standard deviation over the "
              "finished seeds; params and MACs are counted on the meta device at the blueprint's input size "
              "(as `spmkit build`).", ""]
    header = [("Δ " + c[6:]) if c.startswith("delta_") else c for c in shown]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(" --- " for _ in shown) + "|")
    for row in table.rows:
        cells = []
        for c in shown:
            text = fmt_cell(c, row.get(c))
            std = row.get(c + "_std")
            if c in table.metrics and std is not None:
                text += f" ± {std:.2f}"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    if table.invalid:
        lines += ["", "Skipped, invalid:", ""]
        lines += [f"- `{v.label}`: {reason}" for v, reason in table.invalid]
    if table.failed:
        lines += ["", "Failed runs (re-run the sweep to resume them):", ""]
        lines += [f"- `{name}`: see {log}" for name, log in table.failed]
    return "\n".join(lines) + "\n"
