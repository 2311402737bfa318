"""The profiler's user-facing error."""

from __future__ import annotations

from spmkit.errors import SpmkitError


class ProfileError(SpmkitError):
    """A profiling request that cannot run: unknown model, no visible GPU, bad sizes or options."""
