"""Index hot reload: SIGHUP or a change of an index file swaps in a verified new set.

Each worker reloads for itself: it opens the files ``SELFCHECK_INDEX_PATH`` names now,
verifies them exactly as at start-up (checksum, signature, profile, key-check, one
params_id, padding for the largest answer), then replaces ``CheckService.indexes`` in
one assignment. A check reads that attribute once, so a check in flight finishes on the
set it started with; the old set's maps are released when its last check drops it. A
refused reload keeps the old set serving and logs one line. Under ``selfcheck serve``
with several workers the launcher forwards SIGHUP to every worker (``app/cli.py``)
instead of uvicorn's restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.index_set import IndexSet, IndexSetRefused, index_paths
from app.padded_json import PayloadDoesNotFit
from app.settings import Settings

if TYPE_CHECKING:
    from app.check_service import CheckService
    from app.metrics import Metrics

#: Opens and verifies the configured set as start-up does (app.state), or raises.
OpenSet = Callable[[], IndexSet]

logger = logging.getLogger("app.reload")
#: Key operations of one key-check (lookup_index.keyed_hash.key_check_value: one HMAC).
KEY_CHECK_OPERATIONS = 1
#: The watcher wakes at least this often (an empty yield): the first wake-up, once the
#: watch is registered, catches a change made while it was being set up.
WATCH_TIMEOUT_MS = 500
#: (path, inode, modification time, size) of each watched index file.
Fingerprint = frozenset[tuple[str, int, int, int]]


def _fingerprint(directories: list[Path], files: set[Path]) -> Fingerprint:
    paths = files or {path for directory in directories for path in directory.glob("*.bin")}
    seen = set()
    for path in paths:
        try:
            stat = path.stat()
        except OSError:  # being replaced, or removed: the watcher will say
            continue
        seen.add((str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size))
    return frozenset(seen)


class IndexReloader:
    def __init__(
        self,
        settings: Settings,
        service: CheckService,
        open_set: OpenSet,
        describe: Callable[[IndexSet], list[dict[str, Any]]],
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.open_set = open_set
        self.describe = describe
        self.service = service
        self.metrics = metrics
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def reload(self) -> bool:
        """Blocking (files are read and hashed): run it in a thread. True once swapped."""
        with self._lock:
            old = self.service.indexes
            try:
                new = self.open_set()
                try:
                    for payload in self.service.largest_payloads(new):
                        self.service.renderer.render(payload)
                except PayloadDoesNotFit as exc:
                    new.close()
                    raise IndexSetRefused(f"SELFCHECK_RESPONSE_SIZE too small: {exc}") from None
            # The start-up refusals (one line each); anything else is a refusal too: a
            # reload must never take the serving set down.
            except Exception as exc:
                logger.warning("index reload refused, still serving %s: %s", old.id, exc)
                if self.metrics is not None:
                    self.metrics.index_reloads.labels("refused").inc()
                return False
            self.service.indexes = new
            # Its key-check (one key operation) is the service's own, not an intruder's. A
            # refused set may have spent one too: the runbook says so.
            self.service.discount_key_operations(KEY_CHECK_OPERATIONS)
            if self.metrics is not None:
                self.metrics.show_indexes(new.id, self.describe(new))
                self.metrics.index_reloads.labels("loaded").inc()
            logger.info("index reloaded: %s (was %s)", new.id, old.id)
            return True

    # --- triggers ------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGHUP (main thread only: a server process) and, if enabled, the file watcher."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._loop = loop
        if self.settings.index_watch:
            try:
                watched = self._watched()
            except IndexSetRefused:
                return
            # What the files were when the set was opened: a change made before the watch
            # is registered (its thread imports watchfiles first) sends no event.
            opened = _fingerprint(*watched)
            self._watcher = threading.Thread(
                target=self._watch,
                args=(*watched, opened),
                name="selfcheck-index-watch",
                daemon=True,
            )
            self._watcher.start()

    def stop(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.remove_signal_handler(signal.SIGHUP)
            self._loop = None
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def _on_sighup(self) -> None:
        if self._loop is not None:
            self._loop.run_in_executor(None, self.reload)

    def _watched(self) -> tuple[list[Path], set[Path]]:
        """Directories to watch, and the files in them that matter (a whole directory:
        any ``*.bin``). Renames into place are seen too: directories are watched."""
        setting = self.settings.index_path
        if setting.is_dir():
            return [setting.resolve()], set()
        files = {path.resolve() for path in index_paths(setting)}
        return sorted({path.parent for path in files}), files

    def _watch(self, directories: list[Path], files: set[Path], opened: Fingerprint) -> None:
        from watchfiles import watch

        registered = False
        for changes in watch(
            *directories,
            stop_event=self._stop,
            raise_interrupt=False,
            rust_timeout=WATCH_TIMEOUT_MS,
            yield_on_timeout=True,
        ):
            if not registered:
                # The first yield comes once the watch is in place: from here on every
                # change is an event; one made before it shows only in the fingerprint
                # (whatever else this first yield reports, even another file's change).
                registered = True
                if _fingerprint(directories, files) != opened:
                    self.reload()
                    continue
            changed = {Path(path).resolve() for _, path in changes}
            if (files and changed & files) or (
                not files and any(p.suffix == ".bin" for p in changed)
            ):
                self.reload()
