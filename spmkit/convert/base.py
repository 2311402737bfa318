"""The converter contract: rename a release's keys to spmkit's, reshape where layouts differ, and check
(then drop) the non-learnable buffers the release stores.

A converter is a small class in its own file, registered in ``CONVERTERS``::

    @CONVERTERS.register("pvt_v1")
    class PVTv1(Converter):
        release = "whai362/PVT classification/pvt.py"
        def detect(self, keys): return "pos_embed1" in keys and "patch_embed2.proj.weight" in keys
        rule_table = [(r"^patch_embed1\\.", "stem."), ...]

``rule_table`` (or, for a layout that varies within a release, the method ``rules(state_dict)``) holds
``(regex, replacement)`` pairs applied in order with ``re.sub`` (a replacement may be a
function of the match, e.g. to shift a stage index); ``transforms`` reshape tensors by their new name;
``checks`` name buffers that are verified against what spmkit computes and then dropped. Whether the
result fits a model (every tensor used, every parameter set, shapes equal) is checked by
``spmkit.convert.load``, not here.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Collection, Sequence, Union

import torch

from spmkit.errors import CheckpointError

Replacement = Union[str, Callable[[re.Match], str]]
Rule = tuple[str, Replacement]
Transform = tuple[str, Callable[[torch.Tensor], torch.Tensor]]
#: returns ``None`` when the buffer holds what spmkit computes, else why not
Check = tuple[str, Callable[[torch.Tensor], Union[str, None]]]


def shift_stage(offset: int, template: str) -> Callable[[re.Match], str]:
    """A replacement putting ``int(group 1) + offset`` into ``template`` (``{}`` marks the index)."""
    return lambda m: template.format(int(m.group(1)) + offset)


class Converter:
    """One checkpoint layout. Subclasses set ``release`` and implement ``detect`` and ``rules``."""

    name: str = ""
    #: where the layout comes from (repository and file), shown by ``spmkit convert --help`` and in errors
    release: str = ""
    #: tried only when no other layout matches (spmkit's own names, which partial files may use)
    fallback: bool = False

    def detect(self, keys: Collection[str]) -> bool:
        """Whether a state_dict with these keys is in this layout."""
        raise NotImplementedError

    #: the key renames of a layout that has one table (``rules`` returns it)
    rule_table: Sequence[Rule] = ()

    def rules(self, state_dict: dict[str, torch.Tensor]) -> Sequence[Rule]:
        """Key renames, applied in order (the state_dict is given for layouts that vary within a release)."""
        return self.rule_table

    transforms: Sequence[Transform] = ()
    checks: Sequence[Check] = ()

    def convert(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state_dict renamed to spmkit's keys; checked buffers dropped (a wrong one raises)."""
        rules = [(re.compile(p), r) for p, r in self.rules(state_dict)]
        out: dict[str, torch.Tensor] = {}
        origin: dict[str, str] = {}
        bad: list[str] = []
        for key, value in state_dict.items():
            check = next((fn for p, fn in self.checks if re.search(p, key)), None)
            if check is not None:
                why = None if value.is_meta else check(value)
                if why:
                    bad.append(f"{key} ({why})")
                continue
            new = key
            for pattern, repl in rules:
                new = pattern.sub(repl, new)
            for pattern, fn in self.transforms:
                if re.search(pattern, new):
                    value = fn(value)
            if new in out:
                bad.append(f"{origin[new]} and {key} both map to {new}")
            out[new], origin[new] = value, key
        if bad:
            raise CheckpointError(f"{self.name} checkpoint: {len(bad)} tensor{'s' if len(bad) != 1 else ''} "
                                  f"cannot be converted: {'; '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}")
        return out


# -- checks of the buffers releases store --------------------------------------------------------------


def check_relative_position_index(t: torch.Tensor) -> str | None:
    """A ``(hw, hw)`` index of a square grid equals ``spmkit.layers.rel_pos.relative_position_index``."""
    from spmkit.layers.rel_pos import relative_position_index

    n = t.shape[0]
    s = math.isqrt(n)
    if t.dim() != 2 or t.shape[1] != n or s * s != n:
        return f"shape {tuple(t.shape)} is not the index of a square grid"
    if not torch.equal(t.long(), relative_position_index(s, s)):
        return f"differs from the relative position index of a {s}x{s} grid"
    return None


def check_shifted_window_mask(t: torch.Tensor) -> str | None:
    """Swin's ``(nW, N, N)`` attention mask (square map, window ``sqrt(N)``, shift half a window) equals
    ``spmkit.mixers.window.shifted_window_mask``."""
    from spmkit.mixers.window import shifted_window_mask

    if t.dim() != 3 or t.shape[1] != t.shape[2]:
        return f"shape {tuple(t.shape)} is not a (windows, N, N) mask"
    ws, g = math.isqrt(t.shape[1]), math.isqrt(t.shape[0])
    if ws * ws != t.shape[1] or g * g != t.shape[0]:
        return f"shape {tuple(t.shape)} is not the mask of square windows on a square map"
    ref = shifted_window_mask(g * ws, g * ws, (ws, ws), (ws // 2, ws // 2))
    if ref.shape != t.shape or not torch.equal(t.float(), ref.float()):
        return f"differs from the mask of {ws}x{ws} windows shifted by {ws // 2} on a {g * ws}x{g * ws} map"
    return None


RELATIVE_POSITION_INDEX: Check = (r"relative_position_index$", check_relative_position_index)
SWIN_ATTN_MASK: Check = (r"attn_mask$", check_shifted_window_mask)


def flatten_1x1(t: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv weight ``(out, in, 1, 1)`` as the equivalent linear weight ``(out, in)``."""
    return t.flatten(1) if t.dim() == 4 else t
