"""Measuring models: FLOPs/MACs (``flops``, fused attention counted), latency, throughput, training step,
memory, per-module breakdown, traces and resolution sweeps. The CLI front end is ``spmkit profile``."""

from spmkit.profile.entries import Entry, resolve_entries, resolve_entry
from spmkit.profile.errors import ProfileError
from spmkit.profile.runner import ProfileConfig, ProfileResult, profile_entries

__all__ = ["Entry", "ProfileConfig", "ProfileError", "ProfileResult", "profile_entries", "resolve_entries",
           "resolve_entry"]
