"""One small registry class and one registry per extension point.

A component registers itself with a decorator in its own file::

    @MIXERS.register("sra")
    class SpatialReductionAttention(nn.Module): ...

Each extension point's folder imports all of its files (see ``import_submodules``), so adding a new
mixer or merging layer is adding one file. The builder (``spmkit.builder``) is the only code that looks
components up by name.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

from spmkit.errors import SpmkitError, shorten

T = TypeVar("T")


class UnknownComponentError(SpmkitError, KeyError):
    """A name that is not registered; the message suggests the nearest registered names."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(str(name)[:100], known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        msg = f"unknown {kind} {shorten(name)}.{hint} Registered {kind} types: {', '.join(known) or '(none)'}."
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class Registry(Generic[T]):
    """Maps names to components (classes or factories) of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name``; a duplicate name raises ``ValueError``."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                other = self._items[name]
                raise ValueError(
                    f"{self.kind} {name!r} is already registered by "
                    f"{getattr(other, '__module__', '?')}.{getattr(other, '__qualname__', other)}"
                )
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownComponentError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def import_submodules(package_name: str, package_path: list[str]) -> None:
    """Import every module of a package so that each file's ``register`` decorators run."""
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")


STEMS: Registry = Registry("stem")
MERGING: Registry = Registry("merging")
MIXERS: Registry = Registry("mixer")
BLOCKS: Registry = Registry("block")
POS_EMBEDS: Registry = Registry("pos_embed")
HEADS: Registry = Registry("head")
NORMS: Registry = Registry("norm")
ACTS: Registry = Registry("act")
TASKS: Registry = Registry("task")
#: Checkpoint layouts ``spmkit.convert`` reads (official releases, timm, spmkit), one file each in spmkit/convert/layouts/.
CONVERTERS: Registry = Registry("converter")

#: The registries whose components a blueprint names, by the blueprint field that names them.
COMPONENT_REGISTRIES: dict[str, Registry] = {
    "stem": STEMS,
    "merging": MERGING,
    "mixer": MIXERS,
    "block": BLOCKS,
    "pos_embed": POS_EMBEDS,
    "head": HEADS,
    "norm": NORMS,
}

_LOADED = False


def load_components() -> None:
    """Import every component package once, filling the registries."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for pkg in ("layers", "stems", "merging", "mixers", "blocks", "pos_embeds", "heads"):
        importlib.import_module(f"spmkit.{pkg}")
