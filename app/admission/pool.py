"""Pre-computed challenges, refilled by one background thread at a capped CPU share.

Creating a deterministic challenge costs the server one Argon2id. Done on request,
``GET /v1/challenge`` would be a way to make the server hash for free; done ahead, at
most ``cpu_share`` of one core goes to it, and a drained pool answers the uniform 503.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("app.pow")

#: Steps other than the current one keep a few challenges ready for escalated networks.
SPARE_PER_STEP = 2
#: The current step keeps at least this many ready however calm it is (the pool size if
#: smaller); beyond it, twice what was taken over the last ``max_age_s``. Challenges age
#: out of the pool: a full pool nobody draws from would be remade every ``max_age_s``, CPU
#: taken from the checks for nothing (in the load test, where patients pre-solve, most of
#: the pool's work was that).
MIN_READY = 8


class ChallengePool:
    """Per-step queues of (created, challenge); entries older than ``max_age_s`` are dropped."""

    def __init__(
        self,
        create: Callable[[int], dict[str, Any]],
        top_step: int,
        size: int,
        cpu_share: float,
        max_age_s: float,
        current_step: Callable[[], int],
    ) -> None:
        self._create = create
        self._size = size
        self._cpu_share = cpu_share
        self._max_age_s = max_age_s
        self._current_step = current_step
        self._queues: list[collections.deque[tuple[float, dict[str, Any]]]] = [
            collections.deque() for _ in range(top_step + 1)
        ]
        self._lock = threading.Lock()
        #: When challenges were taken, over the last ``max_age_s``: the demand to meet.
        self._taken: collections.deque[float] = collections.deque()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, step: int) -> dict[str, Any] | None:
        """A fresh challenge of this step, or None when none is ready."""
        now = time.monotonic()
        horizon = now - self._max_age_s
        with self._lock:
            self._taken.append(now)
            queue = self._queues[step]
            while queue:
                created, challenge = queue.popleft()
                if created >= horizon:
                    self._wake.set()
                    return challenge
        self._wake.set()
        return None

    def ready(self, step: int) -> int:
        with self._lock:
            return len(self._queues[step])

    def _target(self, step: int, current: int, horizon: float) -> int:
        """How many to keep ready (called holding the lock)."""
        if step != current:
            return min(self._size, SPARE_PER_STEP)
        while self._taken and self._taken[0] < horizon:
            self._taken.popleft()
        return min(self._size, max(MIN_READY, 2 * len(self._taken)))

    def _most_needed(self) -> int | None:
        """The step furthest below its target (the current step first), or None when full."""
        horizon = time.monotonic() - self._max_age_s
        current = self._current_step()
        best: tuple[float, int] | None = None
        with self._lock:
            for step, queue in enumerate(self._queues):
                while queue and queue[0][0] < horizon:
                    queue.popleft()
                target = self._target(step, current, horizon)
                if len(queue) >= target:
                    continue
                fill = len(queue) / target - (1.0 if step == current else 0.0)
                if best is None or fill < best[0]:
                    best = (fill, step)
        return None if best is None else best[1]

    def fill_once(self) -> bool:
        """Create one challenge where it is most needed; False when every queue is full."""
        step = self._most_needed()
        if step is None:
            return False
        challenge = self._create(step)
        with self._lock:
            self._queues[step].append((time.monotonic(), challenge))
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.thread_time()
            try:
                made = self.fill_once()
            except Exception:  # a refill failure must not kill the thread; the pool drains
                logger.exception("challenge pool refill failed")
                made = False
            if not made:
                # Full: sleep until a challenge is taken (or an entry may have aged out).
                self._wake.wait(timeout=max(self._max_age_s / 4, 0.05))
                self._wake.clear()
                continue
            # Cap the CPU share: after d seconds of CPU, rest d * (1/share - 1).
            spent = time.thread_time() - started
            self._stop.wait(spent * (1 / self._cpu_share - 1))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="challenge-pool", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
