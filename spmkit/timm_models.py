"""``timm:<name>`` model specs: the one place that turns such a name into a timm model, so an unknown or
empty name is the same one-paragraph ``SpmkitError`` (exit 2) in every command that takes one (train, eval,
sweep, profile, predict of a run trained on one), never timm's ``RuntimeError`` reported as a bug."""

from __future__ import annotations

from typing import Any

from torch import nn

from spmkit.errors import SpmkitError

TIMM_PREFIX = "timm:"


class UnknownTimmModel(SpmkitError):
    """A ``timm:`` name that timm does not know."""


def is_timm_spec(spec: str | None) -> bool:
    """Whether a blueprint argument names a timm model (``timm:<name>``)."""
    return isinstance(spec, str) and spec.startswith(TIMM_PREFIX)


def timm_name(spec: str) -> str:
    """The timm model name of ``timm:<name>`` (or of a bare name), checked to exist."""
    import timm

    name = spec[len(TIMM_PREFIX):] if is_timm_spec(spec) else spec
    if not name.strip():
        raise UnknownTimmModel("`timm:` needs a model name, e.g. timm:swin_tiny_patch4_window7_224.")
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
        from spmkit.errors import shorten

        raise UnknownTimmModel(f"timm has no model named {shorten(name)}.{hint} List names with "
                               f"`python -c \"import timm; print(timm.list_models('*swin*'))\"`.")
    return name


def create_timm_model(spec: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)`` for ``timm:<name>``, after :func:`timm_name`."""
    import timm

    return timm.create_model(timm_name(spec), pretrained=False, **kwargs)
