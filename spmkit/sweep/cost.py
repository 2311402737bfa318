"""What each variant costs: parameters and MACs on the meta device (as ``spmkit build`` counts them), and
optionally latency, throughput and memory through the profiler (``spmkit.profile``).

Profiling runs in the sweep's own process, every variant in one ``profile_entries`` call, so the timed
measurements interleave the variants round-robin like ``spmkit profile`` does; it never runs in parallel
with other variants (``--jobs``), which would distort the timings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from spmkit.sweep.grid import Grid, Variant

#: the profile fields a sweep keeps (``ProfileResult`` names)
PROFILE_FIELDS = ("latency_ms", "throughput", "train_step_ms", "peak_memory_bytes", "train_peak_memory_bytes")


@dataclass(frozen=True)
class MetaCost:
    params: int
    macs: int
    input_size: tuple[int, int]


def meta_cost(variant: Variant) -> MetaCost | str:
    """Parameters and MACs of ``variant`` at its blueprint's input size, or why it is invalid (the message of
    the validation or of the meta-device build and forward)."""
    from spmkit.blueprint import load_blueprint
    from spmkit.errors import BlueprintError, SpmkitError
    from spmkit.profile.summary import summarize

    try:
        s = summarize(load_blueprint(variant.base, variant.blueprint_overrides))
    except BlueprintError as err:
        return "; ".join(str(i) for i in err.issues) or str(err)
    except SpmkitError as err:
        return str(err)
    except (RuntimeError, ValueError, AssertionError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return f"does not build on the meta device: {first}"
    return MetaCost(s.params, s.macs, tuple(s.input_size))


def validate(variants: Sequence[Variant], progress: Callable[[str], None] | None = None
             ) -> tuple[Grid, dict[str, MetaCost]]:
    """Split ``variants`` into valid and invalid (with the reason); the valid ones' meta costs by blueprint key."""
    grid, costs = Grid(), {}
    for v in variants:
        if progress:
            progress(f"checking {v.label}")
        result = meta_cost(v)
        if isinstance(result, str):
            grid.invalid.append((v, result))
        else:
            grid.valid.append(v)
            costs[v.blueprint_key] = result
    return grid, costs


@dataclass(frozen=True)
class ProfileSettings:
    device: str = "cpu"
    batch_size: int = 8
    warmup: int = 2
    repeats: int = 10
    max_seconds: float | None = 30.0
    memory: bool = True
    train: bool = False  # also time a training step (slow on CPU; the sweep trains for real anyway)

    def key(self) -> str:
        return (f"{self.device}|b{self.batch_size}|w{self.warmup}|r{self.repeats}|t{self.max_seconds}"
                f"|m{int(self.memory)}|tr{int(self.train)}")


def profile_variants(variants: Sequence[Variant], settings: ProfileSettings,
                     progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Profile every variant at its blueprint's input size; ``{blueprint_key: {field: value}}``."""
    from spmkit.profile import ProfileConfig, profile_entries
    from spmkit.profile.entries import resolve_entry

    if not variants:
        return {}
    entries = [resolve_entry(v.base, v.blueprint_overrides, name=v.slug) for v in variants]
    cfg = ProfileConfig(device=settings.device, batch_size=settings.batch_size, warmup=settings.warmup,
                        repeats=settings.repeats, max_seconds=settings.max_seconds, memory=settings.memory,
                        train=settings.train)
    results = profile_entries(entries, cfg, progress)
    by_name = {r.name: r for r in results}
    out = {}
    for v in variants:
        r = by_name[v.slug]
        row = {f: getattr(r, f) for f in PROFILE_FIELDS}
        row.update(profile_params=r.params, profile_device=r.device)
        out[v.blueprint_key] = row
    return out
