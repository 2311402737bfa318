"""Helpers for components whose tables depend on the input size (position embeddings, relative-position
bias tables). Such a component defines, beside ``init_weights``::

    def resize_state_dict(self, prefix: str, state_dict: dict[str, torch.Tensor]) -> list[str]:
        '''Resize this module's size-dependent tables in ``state_dict`` (keys ``prefix + name``) to its own
        shapes, in place; return the keys it changed. Raise ``TableResizeError`` when one cannot be resized.'''

The loading machinery (``spmkit.convert.resize.resize_tables``) calls it for every module before the
checkpoint is compared with the model, so a component with a size-dependent table stays one file.
"""

from __future__ import annotations

import math

import torch


class TableResizeError(ValueError):
    """A size-dependent table of a checkpoint cannot be resized to the model's (the message says why)."""


def table_to_resize(module: torch.nn.Module, prefix: str, name: str,
                    state_dict: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(checkpoint tensor, own tensor)`` of table ``name`` when the checkpoint has it in another shape;
    ``None`` when it is absent, the same shape, or the module has no such table."""
    own = getattr(module, name, None)
    src = state_dict.get(prefix + name)
    if not isinstance(own, torch.Tensor) or src is None or tuple(src.shape) == tuple(own.shape):
        return None
    return src, own


def source_grid(n: int, like: tuple[int, int], what: str) -> tuple[int, int]:
    """The ``(h, w)`` grid of ``n`` positions in a checkpoint: square when ``n`` is a square, else the grid
    with the aspect ratio of ``like`` (the model's grid); ``TableResizeError`` when neither fits."""
    s = math.isqrt(n)
    if s * s == n:
        return s, s
    h = round(math.sqrt(n * like[0] / like[1])) if like[1] else 0
    if h > 0 and n % h == 0 and h * like[1] == (n // h) * like[0]:
        return h, n // h
    raise TableResizeError(f"{what}: {n} positions are neither a square grid nor a grid shaped like the "
                           f"model's {like[0]}x{like[1]}")


def source_rel_pos_grid(n: int, like: tuple[int, int], what: str) -> tuple[int, int]:
    """The ``(h, w)`` map (or window) of a ``(2h-1)(2w-1)``-entry relative-position table in a checkpoint."""
    gh, gw = source_grid(n, (2 * like[0] - 1, 2 * like[1] - 1), what)
    if gh % 2 == 0 or gw % 2 == 0:
        raise TableResizeError(f"{what}: {n} entries are not the (2h-1)(2w-1) offsets of an h x w grid")
    return (gh + 1) // 2, (gw + 1) // 2


def rel_pos_table_to_resize(module: torch.nn.Module, prefix: str,
                            state_dict: dict[str, torch.Tensor]) -> tuple[torch.Tensor, str] | None:
    """``(checkpoint table, key)`` of the module's ``relative_position_bias_table`` when the checkpoint's has
    other positions (its heads checked); ``None`` when there is nothing to resize."""
    pair = table_to_resize(module, prefix, "relative_position_bias_table", state_dict)
    if pair is None:
        return None
    src, own = pair
    key = prefix + "relative_position_bias_table"
    check_heads(src, own, key)
    return src, key


def check_heads(src: torch.Tensor, own: torch.Tensor, key: str) -> None:
    """A ``[positions, heads]`` table of a checkpoint has this model's number of heads."""
    if src.dim() != 2 or src.shape[1] != own.shape[1]:
        raise TableResizeError(f"{key}: relative-position table {list(src.shape)} cannot be resized to "
                               f"{list(own.shape)} (only the positions can change, not the {own.shape[1]} heads)")
