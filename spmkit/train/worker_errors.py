"""Errors raised inside data-loader worker processes reach the user as they would with ``workers=0``.

torch re-raises a worker's exception in the main process as a new exception built from the worker's
formatted traceback (or as a ``RuntimeError`` when the type cannot be built from one string), so the
one-paragraph message of an ``SpmkitError`` would become a traceback. Here the dataset and the collate
function catch the exception in the worker and hand it back as a batch (:class:`WorkerFailure`); the
loader raises it again in the main process: the original exception when it survives pickling, else an
``SpmkitError`` with the same message and exit code. Nothing here depends on torch's wrapper internals.
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any, Callable, Iterator

from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info
from torch.utils.data._utils.collate import default_collate

from spmkit.errors import SpmkitError


class WorkerError(SpmkitError):
    """An ``SpmkitError`` of a worker whose type could not be rebuilt in the main process."""


class WorkerFailure:
    """An exception raised in a worker, carried back to the main process in place of a batch."""

    def __init__(self, exc: BaseException) -> None:
        self.payload: bytes | None = None
        try:
            blob = pickle.dumps(exc)
            pickle.loads(blob)  # exceptions with custom __init__ may pickle but not unpickle
            self.payload = blob
        except Exception:  # noqa: BLE001
            pass
        self.type_name = type(exc).__name__
        self.message = str(exc)
        self.is_user_error = isinstance(exc, SpmkitError)
        self.exit_code = int(getattr(exc, "exit_code", 2))
        self.worker_traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def exception(self) -> BaseException:
        if self.payload is not None:
            exc = pickle.loads(self.payload)
        elif self.is_user_error:
            exc = WorkerError(self.message)
            exc.exit_code = self.exit_code
        else:
            exc = RuntimeError(f"{self.type_name}: {self.message}")
        if hasattr(exc, "add_note"):  # for SPMKIT_DEBUG=1 style tracebacks
            exc.add_note("raised in a data-loader worker:\n" + self.worker_traceback)
        return exc


def _in_worker() -> bool:
    return get_worker_info() is not None


class CatchInWorker(Dataset):
    """``dataset`` whose ``__getitem__`` returns a :class:`WorkerFailure` instead of raising in a worker."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except Exception as e:  # noqa: BLE001 - handed to the main process, raised there
            if not _in_worker():
                raise
            return WorkerFailure(e)

    def __getattr__(self, name: str) -> Any:  # coco, label_to_cat, class_names, ...
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class CatchInWorkerStream(IterableDataset):
    """An iterable ``dataset`` that, in a worker, yields a :class:`WorkerFailure` (repeatedly, so that it
    fills a batch even with ``drop_last``) instead of raising."""

    def __init__(self, dataset: IterableDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self.dataset
        except Exception as e:  # noqa: BLE001 - handed to the main process, raised there
            if not _in_worker():
                raise
            failure = WorkerFailure(e)
            while True:
                yield failure

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class CatchCollate:
    """A collate function that passes a :class:`WorkerFailure` through and catches its own errors."""

    def __init__(self, collate: Callable[[list[Any]], Any] | None) -> None:
        self.collate = collate or default_collate

    def __call__(self, items: list[Any]) -> Any:
        for item in items:
            if isinstance(item, WorkerFailure):
                return item
        try:
            return self.collate(items)
        except Exception as e:  # noqa: BLE001
            if not _in_worker():
                raise
            return WorkerFailure(e)


class SafeLoader(DataLoader):
    """A ``DataLoader`` whose worker errors are raised as in the main process (see the module docstring)."""

    def __init__(self, dataset: Dataset, *args: Any, collate_fn: Callable | None = None, **kwargs: Any) -> None:
        wrapped = CatchInWorkerStream(dataset) if isinstance(dataset, IterableDataset) else CatchInWorker(dataset)
        super().__init__(wrapped, *args, collate_fn=CatchCollate(collate_fn), **kwargs)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        """The loader's iterator is made here, not at the first ``next``: its workers start at once (the
        training loop starts the next epoch's batches before evaluating the current one)."""
        return _raise_failures(super().__iter__())

    def close(self) -> None:
        """Shut down persistent workers now (they ignore SIGTERM, see ``spmkit.train.preemption``, so left to
        the garbage collector they could outlive a failed run and hold up the interpreter's exit)."""
        it = getattr(self, "_iterator", None)
        self._iterator = None
        shutdown = getattr(it, "_shutdown_workers", None)
        if callable(shutdown):
            shutdown()


def _raise_failures(batches: Iterator[Any]) -> Iterator[Any]:
    for batch in batches:
        if isinstance(batch, WorkerFailure):
            raise batch.exception()
        yield batch
