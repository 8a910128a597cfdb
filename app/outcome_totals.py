"""Outcomes as daily totals for the DPO, never a live count.

A live "affected" counter next to per-request logs would tie an outcome to a network in
quiet hours. So each worker counts outcomes for the current UTC day in its own memory
and adds them to the shared store only once the day is over (at its first check of the
next day) or when it stops; ``selfcheck outcomes`` then prints the days that are over,
with any count under 10 shown as "< 10". The store holds one counter per day and
outcome, kept ``DAYS_KEPT`` days; no metric, log line or answer carries an outcome.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, date, datetime, timedelta

from limits.storage import Storage

DAYS_KEPT = 400
OUTCOMES = ("affected", "not_found")
#: Below this a daily count is published as "< 10" (small counts single people out).
SMALL = 10


def store_key(day: str, outcome: str) -> str:
    return f"outcomes/v1/{day}/{outcome}"


def utc_day() -> str:
    return datetime.now(UTC).date().isoformat()


class DailyOutcomes:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._lock = threading.Lock()
        self._day = utc_day()
        self._counts = dict.fromkeys(OUTCOMES, 0)

    def count(self, found: bool) -> None:
        """One answered check (in the check's thread). Only a new day touches the store."""
        today = utc_day()
        with self._lock:
            if today != self._day:
                self._flush_locked()
                self._day = today
            self._counts[OUTCOMES[0] if found else OUTCOMES[1]] += 1

    def flush(self) -> None:
        """At shutdown: this process's counts of the day join the store's."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        pending = {outcome: n for outcome, n in self._counts.items() if n}
        self._counts = dict.fromkeys(OUTCOMES, 0)
        # A failing store loses these counts, never a check: they are statistics.
        with contextlib.suppress(Exception):
            for outcome, n in pending.items():
                self._storage.incr(store_key(self._day, outcome), DAYS_KEPT * 86400, n)


def published(n: int) -> str:
    return str(n) if n >= SMALL else f"< {SMALL}"


def report(storage: Storage, days: int, today: date | None = None) -> list[str]:
    """One line per day that is over, most recent first: ``YYYY-MM-DD affected=.. not_found=..``."""
    today = today or datetime.now(UTC).date()
    lines = []
    for back in range(1, days + 1):
        day = (today - timedelta(days=back)).isoformat()
        counts = {o: int(storage.get(store_key(day, o)) or 0) for o in OUTCOMES}
        lines.append(day + " " + " ".join(f"{o}={published(n)}" for o, n in counts.items()))
    return lines
