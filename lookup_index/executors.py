"""Where a build's chunks are stretched: inline, in a local process pool, or on Dask.

All three run :func:`stretch_rows` with the same arguments (rows, salt,
profile, default mask: never the pepper) and keep a bounded number of chunks
in flight, so the export is streamed and never held in memory whole.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar

from lookup_index.csv_input import ExportRow
from lookup_index.profiles import Argon2Profile
from lookup_index.row_stretching import StretchedChunk, stretch_rows

T = TypeVar("T")


class ChunkExecutor(Protocol):
    """Runs :func:`stretch_rows` on chunks; ``stretch`` yields results as they finish."""

    def stretch(
        self, tasks: Iterator[tuple[T, Sequence[ExportRow]]]
    ) -> Iterator[tuple[T, StretchedChunk]]: ...

    def close(self) -> None: ...


def bounded(
    tasks: Iterator[tuple[T, Sequence[ExportRow]]],
    submit: Callable[[T, Sequence[ExportRow]], Any],
    wait_any: Callable[[set[Any]], set[Any]],
    slots: int,
) -> Iterator[tuple[T, StretchedChunk]]:
    """Keep at most ``slots`` futures in flight; yield (tag, result) in completion order."""
    pending: dict[Any, T] = {}
    exhausted = False
    while pending or not exhausted:
        while not exhausted and len(pending) < slots:
            task = next(tasks, None)
            if task is None:
                exhausted = True
                break
            tag, rows = task
            pending[submit(tag, rows)] = tag
        if not pending:
            break
        for future in wait_any(set(pending)):
            tag = pending.pop(future)
            yield tag, future.result()


class _Params:
    def __init__(
        self, salt: bytes, profile: Argon2Profile, default_mask: int, with_contacts: bool = False
    ) -> None:
        self.salt = salt
        self.profile = profile
        self.default_mask = default_mask
        #: Validate and return the rows' contacts (private delivery).
        self.with_contacts = with_contacts


class InlineExecutor(_Params):
    """``--workers 1``: in this process, no pool to start."""

    def stretch(
        self, tasks: Iterator[tuple[T, Sequence[ExportRow]]]
    ) -> Iterator[tuple[T, StretchedChunk]]:
        for tag, rows in tasks:
            yield (
                tag,
                stretch_rows(rows, self.salt, self.profile, self.default_mask, self.with_contacts),
            )

    def close(self) -> None:
        return None


def _first_completed(futures: set[Any]) -> set[Any]:
    done, _ = wait(futures, return_when=FIRST_COMPLETED)
    return done


class ProcessPoolChunkExecutor(_Params):
    """All cores of this machine (``--workers N``)."""

    def __init__(
        self,
        salt: bytes,
        profile: Argon2Profile,
        default_mask: int,
        workers: int,
        with_contacts: bool = False,
    ):
        super().__init__(salt, profile, default_mask, with_contacts)
        self.workers = workers
        # forkserver: workers never inherit the progress bar's thread or open files.
        self._pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("forkserver")
        )

    def _submit(self, tag: object, rows: Sequence[ExportRow]) -> Future[StretchedChunk]:
        return self._pool.submit(
            stretch_rows, rows, self.salt, self.profile, self.default_mask, self.with_contacts
        )

    def stretch(
        self, tasks: Iterator[tuple[T, Sequence[ExportRow]]]
    ) -> Iterator[tuple[T, StretchedChunk]]:
        return bounded(tasks, self._submit, _first_completed, self.workers * 4)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
