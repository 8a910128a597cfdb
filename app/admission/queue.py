"""The one place where checks wait: for room under the class ceiling, then for a hash slot.

A proven request finding its ceiling full waits, up to ``wait_s`` in all, for it to
free up, then gets the 429; an unproven one gets the 429 at once (its class is small on
purpose). Both then wait, within the same deadline, for one of ``hash_slots`` Argon2
slots: each hash holds its memory cost, and more at once than the cores only adds
latency. Past ``max_in_flight`` checks waiting or hashing, or when no slot frees in
time, the server is overloaded: the uniform 503 at once (the floor still holds it),
instead of a queue that outgrows the floor. Only admitted work is counted, and its
place is freed when the hash is done, not when the floor releases the answer.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from app.errors import RateLimited, Unavailable

#: Checks allowed in flight per hash slot by default: 8 x 25-60 ms of Argon2 is about one floor.
QUEUE_PER_HASH_SLOT = 8
#: How often a waiter looks at the ceiling again (a shared store has no wake-up call).
POLL_S = 0.02


class AdmissionQueue:
    def __init__(self, hash_slots: int, wait_s: float, max_in_flight: int = 0) -> None:
        self._slots = threading.BoundedSemaphore(hash_slots)
        self._in_flight = threading.BoundedSemaphore(
            max_in_flight or QUEUE_PER_HASH_SLOT * hash_slots
        )
        self._wait_s = wait_s

    def wait_for_room(self, ceiling_open: Callable[[], bool], may_wait: bool) -> None:
        """Return once the class ceiling has room; raise RateLimited when it does not in time.

        Waiting for the ceiling takes no place in flight: a request the ceiling refuses must
        never crowd out one that will be hashed (a worker thread is its only cost, and the
        thread pool bounds those).
        """
        deadline = time.monotonic() + self._wait_s
        while not ceiling_open():
            if not may_wait or time.monotonic() + POLL_S > deadline:
                raise RateLimited
            time.sleep(POLL_S)

    @contextlib.contextmanager
    def hash_slot(self) -> Iterator[None]:
        """Hold one of the hash slots; Unavailable (overload) when none frees in time."""
        if not self._in_flight.acquire(blocking=False):
            raise Unavailable
        try:
            if not self._slots.acquire(timeout=self._wait_s):
                raise Unavailable
            try:
                yield
            finally:
                self._slots.release()
        finally:
            self._in_flight.release()
