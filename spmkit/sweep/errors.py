"""The sweep's user-facing error."""

from __future__ import annotations

from spmkit.errors import SpmkitError


class SweepError(SpmkitError):
    """A sweep that cannot run: a bad sweep file or ``--vary``, a locked output folder, failed variants."""
