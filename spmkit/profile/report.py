"""Result rows for scripts and tables: flat dicts with ratios against the first entry, JSON and CSV.

Ratios are ``value / first entry's value`` at the same input size (so 1.25 latency means 25 % slower);
rendering (the rich table) is the CLI's job.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Sequence

from spmkit.profile.runner import ProfileResult

RATIO_FIELDS = ("params", "macs", "latency_ms", "throughput", "train_step_ms", "peak_memory_bytes")
CSV_FIELDS = ("name", "entry", "device", "input_size", "batch_size", "params", "macs", "gmacs", "flops",
              "latency_ms", "latency_p90_ms", "batch_latency_ms", "batch_latency_p90_ms", "throughput",
              "train_step_ms", "train_step_p90_ms", "train_throughput", "peak_memory_bytes",
              "train_peak_memory_bytes", "max_allocated_bytes", "max_reserved_bytes",
              "train_max_allocated_bytes", "train_max_reserved_bytes", "amp", "channels_last", "compiled",
              "threads", "repeats", "memory_method") + tuple(f"{f}_ratio" for f in RATIO_FIELDS)


def result_rows(results: Sequence[ProfileResult]) -> list[dict]:
    """One dict per result, with ``<field>_ratio`` against the first result of the same input size."""
    first: dict[tuple[int, int], ProfileResult] = {}
    rows = []
    for r in results:
        base = first.setdefault(r.input_size, r)
        d = r.to_dict()
        d["breakdown"] = [dict(b.__dict__) for b in r.breakdown]
        for f in RATIO_FIELDS:
            a, b = getattr(r, f), getattr(base, f)
            d[f"{f}_ratio"] = (a / b) if (a is not None and b) else None
        rows.append(d)
    return rows


def to_json(results: Sequence[ProfileResult]) -> str:
    return json.dumps(result_rows(results), indent=2)


def to_csv(results: Sequence[ProfileResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in result_rows(results):
        row["input_size"] = "x".join(str(s) for s in row["input_size"])
        writer.writerow(row)
    return buf.getvalue()
