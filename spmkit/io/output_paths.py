"""Where a command may write, and how: the one mechanism every writing command of spmkit uses.

Rules (checked for every output before anything is computed or written):

- an output that is one of the command's inputs (same resolved path, or the same file through a link) is
  refused always, ``--force`` or not;
- an output that exists is replaced only if spmkit made it, for the same purpose (the same command and
  role: a ``visualize`` PNG is not an ``export`` file, a run's ``last.pt`` is neither); anything else is
  refused unless ``--force``;
- an output path that is a folder, or the manifest itself, is refused;
- every write is atomic (a temporary file beside the target, fsync, rename): a failure (a full disk, an
  exporter exception, a check that fails) leaves the previous file, or nothing, never a half-written one.

How spmkit knows it made a file: each folder spmkit writes outputs into holds a small manifest,
``.spmkit-outputs.json``, listing the files spmkit wrote there with their purpose, size and SHA-256. A file
counts as spmkit's only while it is listed for that purpose *and* its content still has the recorded hash,
so a user's file of the same name, or one spmkit wrote that the user has since edited or replaced, is
protected. The manifest travels with the folder (``cp -r``, ``rsync``); a lost or damaged manifest only
makes spmkit ask for ``--force``, never replace a file. Run folders of ``spmkit train`` are owned as a whole
(``.spmkit-run``, see ``spmkit.train.run_dir``) and need no manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from spmkit.errors import SpmkitError, shorten

#: the manifest of the files spmkit wrote in a folder
MANIFEST = ".spmkit-outputs.json"
MANIFEST_FORMAT = "spmkit-outputs"
#: a manifest larger than this is not read (a damaged or hostile file); its folder's files count as foreign
MANIFEST_MAX_BYTES = 32 * 1024 * 1024
#: seconds between manifest writes while many outputs are written (and always once at the end)
FLUSH_EVERY_S = 2.0

PathLike = str | os.PathLike


class OutputPathError(SpmkitError):
    """An output path that would overwrite an input, a file spmkit did not make (without --force), the
    manifest, or that is a folder."""


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, ValueError):
        return False


def file_sha256(path: PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: PathLike) -> dict[str, dict]:
    """``{file name: {"purpose", "size", "sha256"}}`` of a folder; ``{}`` when absent or unreadable."""
    path = Path(folder) / MANIFEST
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MANIFEST_MAX_BYTES:
            return {}
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = doc.get("files") if isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, dict)}


def made_by_spmkit(path: PathLike, purpose: str) -> bool:
    """Whether ``path`` is a file spmkit wrote for ``purpose`` and nobody has changed since."""
    path = Path(path)
    entry = read_manifest(path.parent).get(path.name)
    if entry is None or entry.get("purpose") != purpose:
        return False
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
        return file_sha256(path) == entry.get("sha256")
    except OSError:
        return False


def check_output_path(out: PathLike, inputs: Iterable[PathLike | None], force: bool, option: str = "--output",
                      purpose: str | None = None) -> Path:
    """``out`` as a ``Path`` if the command may write it (see the module docstring); ``OutputPathError``
    naming the path as given. Without ``purpose`` only ``force`` allows replacing an existing file."""
    path = Path(out)
    shown = shorten(str(out), 300, quote=False)
    for src in inputs:
        if src is not None and _same(path, Path(src)):
            raise OutputPathError(f"{option} {shown}: this is an input of the command "
                                  f"({shorten(str(src), 300, quote=False)}); refusing to overwrite it, even with "
                                  f"--force. Choose another output path.")
    if path.name == MANIFEST:
        raise OutputPathError(f"{option} {shown}: {MANIFEST} is the list of files spmkit wrote in a folder; "
                              f"choose another name.")
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        raise OutputPathError(f"{option} {shown}: is a folder; give a file path, e.g. {shown.rstrip('/')}/out.pt.")
    if (path.exists() or path.is_symlink()) and not force and not (purpose and made_by_spmkit(path, purpose)):
        what = f"was not written by spmkit {purpose}" if purpose else "already exists"
        raise OutputPathError(f"{option} {shown}: the file exists and {what} (or was changed since); refusing to "
                              f"replace it. Pass --force to overwrite it, or choose another path.")
    return path


class Outputs:
    """The outputs of one command run: claimed (checked) first, then written atomically and recorded.

    ::

        outs = Outputs("visualize", inputs=[image, checkpoint], force=force)
        png = outs.claim(output, "--output")            # before any work
        with outs:
            outs.write(png, lambda f: fig.savefig(f, format="png"))
            with outs.path(other) as tmp:               # for writers that need a file name
                exporter.save(tmp)

    Every file written through it is listed in its folder's manifest (written every ``FLUSH_EVERY_S``
    seconds and when the ``with`` block ends, also on an error)."""

    def __init__(self, purpose: str, inputs: Iterable[PathLike | None] = (), force: bool = False) -> None:
        self.purpose = purpose
        self.inputs = [i for i in inputs if i is not None]
        self.force = force
        self._claimed: set[Path] = set()
        self._pending: dict[Path, dict[str, dict]] = {}
        self._flushed_at = time.monotonic()

    def claim(self, out: PathLike, option: str = "--output", extra_inputs: Iterable[PathLike] = ()) -> Path:
        """Check ``out`` (see the module docstring) and remember it as one of this run's outputs;
        ``extra_inputs`` are inputs to compare with this output only (e.g. the one image it is drawn from)."""
        path = check_output_path(out, [*self.inputs, *extra_inputs], self.force, option, self.purpose)
        self._claimed.add(Path(os.path.abspath(path)))
        return path

    def _checked(self, out: PathLike) -> Path:
        full = Path(os.path.abspath(out))
        if full not in self._claimed:
            self.claim(out)
        return full

    @contextlib.contextmanager
    def path(self, out: PathLike, suffix: str | None = None) -> Iterator[Path]:
        """A temporary path beside ``out`` to write; moved onto ``out`` (atomically) when the block ends
        without an error, removed otherwise. ``suffix`` defaults to ``out``'s (exporters look at it)."""
        from spmkit.io.atomic import TMP_PREFIX, fsync_dir, umask, write_error

        full = self._checked(out)
        try:
            full.parent.mkdir(parents=True, exist_ok=True)
            import tempfile

            fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix if suffix is not None else full.suffix,
                                            dir=full.parent)
            os.close(fd)
        except OSError as e:
            raise write_error(full, e) from None
        tmp = Path(tmp_name)
        try:
            os.chmod(tmp, 0o666 & ~umask())
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            digest, size = file_sha256(tmp), tmp.stat().st_size
            os.replace(tmp, full)
        except BaseException as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            cause = e if isinstance(e, OSError) else e.__cause__ or e.__context__
            if isinstance(cause, OSError) and isinstance(e, (OSError, RuntimeError)):
                raise write_error(full, cause, kept=full.exists()) from None
            raise
        fsync_dir(full.parent)
        self._record(full, size, digest)

    def write(self, out: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
        """Call ``write(file)`` on a temporary file and move it onto ``out``."""
        with self.path(out) as tmp:
            with open(tmp, "wb") as f:
                write(f)
        return Path(out)

    def write_text(self, out: PathLike, text: str) -> Path:
        data = text.encode("utf-8")
        return self.write(out, lambda f: f.write(data))

    def write_bytes(self, out: PathLike, data: bytes) -> Path:
        return self.write(out, lambda f: f.write(data))

    def _record(self, full: Path, size: int, digest: str) -> None:
        self._pending.setdefault(full.parent, {})[full.name] = {"purpose": self.purpose, "size": size,
                                                                 "sha256": digest}
        if time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Write the manifests of the folders written to since the last flush (merged with what is there)."""
        from spmkit.io.atomic import WriteError, write_text_atomic

        pending, self._pending = self._pending, {}
        for folder, entries in pending.items():
            files = read_manifest(folder)
            files.update(entries)
            files = {k: v for k, v in files.items() if (folder / k).exists()}  # forget removed files
            doc = {"format": MANIFEST_FORMAT, "version": 1,
                   "about": "files spmkit wrote in this folder; it replaces only these, while unchanged",
                   "files": dict(sorted(files.items()))}
            try:
                write_text_atomic(folder / MANIFEST, json.dumps(doc, indent=1) + "\n")
            except WriteError:
                pass  # the outputs are written; without the record spmkit only asks for --force next time
        self._flushed_at = time.monotonic()

    def __enter__(self) -> "Outputs":
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

