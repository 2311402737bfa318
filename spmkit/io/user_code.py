"""The user's own code: the files and modules a blueprint's ``imports:`` or ``--task SOURCE:NAME`` names.

Importing them runs their ``MIXERS.register(...)`` / ``TASKS.register(...)`` decorators, so the names they
register validate like builtin ones. Only what the user names is imported, never anything a blueprint
could name implicitly.

An entry is a *file* when it ends in ``.py`` or holds a path separator (``ext_mixer.py``,
``../common/mixers.py``), else a *module name* (``my_pkg.mixers``) imported with ``importlib`` from
``sys.path``. A file is imported once per process, keyed by its resolved path, under a stable module name
(``spmkit_user_code.<stem>_<hash of the path>``) that is the same in every process (DDP workers, sweep
jobs), so classes defined there pickle and compare alike.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

from spmkit.errors import SpmkitError, shorten

#: the package name files are imported under (``sys.modules`` keys ``spmkit_user_code.<stem>_<hash>``)
PACKAGE = "spmkit_user_code"
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_by_path: dict[Path, ModuleType] = {}


class UserImportError(SpmkitError):
    """A named file or module that is missing, or that failed while being imported."""


def is_file_entry(entry: str) -> bool:
    """``ext.py``, ``a/b.py``, ``./x``: a file; ``pkg.mod``: a module name."""
    return entry.endswith(".py") or "/" in entry or os.sep in entry or (os.altsep or "/") in entry


def absolute_entry(entry: str, base: Path) -> str:
    """A file entry made absolute against folder ``base`` (module names are returned as they are)."""
    if not is_file_entry(entry):
        return entry
    path = Path(entry).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def check_entry(entry: Any) -> str | None:
    """Why ``entry`` cannot name a file or module (``None``: it can)."""
    if not isinstance(entry, str) or not entry or "\0" in entry:
        return f"{shorten(entry)} is not a file path or module name"
    if not is_file_entry(entry) and not _MODULE_NAME.match(entry):
        return f"{shorten(entry)} is neither a .py file nor a module name (my_pkg.mixers)"
    return None


def _failure(exc: BaseException, path: str | None) -> str:
    """The user-code line that failed and the exception, in one line."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f" (line {exc.lineno})"
    elif path is not None:
        mine = [f for f in frames if os.path.realpath(f.filename) == os.path.realpath(path)]
        if mine:
            where = f" (line {mine[-1].lineno})"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}{where}" + (f": {shorten(text, 300, quote=False)}" if text else "")


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    if path in _by_path:
        return _by_path[path]
    if not path.is_file():
        raise UserImportError(f"{path}: no such file")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"{PACKAGE}.{stem}_{digest}"
    if name in sys.modules:  # imported by an earlier spmkit in this process (e.g. reloaded)
        _by_path[path] = sys.modules[name]
        return sys.modules[name]
    if PACKAGE not in sys.modules:
        pkg = ModuleType(PACKAGE)
        pkg.__path__ = []  # a namespace for the user's files, nothing to import from it
        sys.modules[PACKAGE] = pkg
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserImportError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it, as ``import`` does (dataclasses, pickling)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise UserImportError(f"{path}: importing it failed: {_failure(exc, str(path))}") from exc
    _by_path[path] = module
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise UserImportError(f"no module named {name!r} on the Python path (sys.path); give a .py file "
                                  f"path instead, or install the module / add its folder to PYTHONPATH") from None
        raise UserImportError(f"module {name!r}: importing it failed: {_failure(exc, None)}") from exc
    except Exception as exc:
        file = getattr(sys.modules.get(name), "__file__", None)
        raise UserImportError(f"module {name!r}: importing it failed: {_failure(exc, file)}") from exc


def import_entry(entry: str, base: Path | None = None) -> ModuleType:
    """Import one file (relative to ``base``, default the working directory) or module name."""
    problem = check_entry(entry)
    if problem is not None:
        raise UserImportError(problem)
    if is_file_entry(entry):
        return _import_file(Path(absolute_entry(entry, base or Path.cwd())))
    return _import_module(entry)


def import_all(entries: Iterable[str], base: Path | None = None) -> list[ModuleType]:
    """Import every entry in order (see ``import_entry``)."""
    return [import_entry(e, base) for e in entries]


def split_task(spec: str) -> tuple[str | None, str]:
    """``"classification"`` -> (None, name); ``"my_tasks.py:NAME"`` / ``"my_pkg.tasks:NAME"`` -> (source, name)."""
    source, sep, name = spec.rpartition(":")
    if not sep or not source or not name or "/" in name or "\\" in name:
        return None, spec
    return source, name


def absolute_task(spec: str, base: Path | None = None) -> str:
    """``my_tasks.py:NAME`` with the file made absolute (what run folders and DDP workers are given)."""
    source, name = split_task(spec)
    return spec if source is None else f"{absolute_entry(source, base or Path.cwd())}:{name}"


def task_class(spec: str) -> Any:
    """The ``Task`` class of a task name, or of ``SOURCE:NAME`` after importing SOURCE (file or module)."""
    from spmkit.registry import TASKS

    source, name = split_task(spec)
    if source is not None:
        try:
            import_entry(source)
        except UserImportError as err:
            raise UserImportError(f"--task {shorten(spec, 300, quote=False)}: {err}") from None
    return TASKS.get(name)
