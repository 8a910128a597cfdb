"""The global cost step, adapted to the proven class's load, and the attack signal.

The step rises one notch when the proven class used most of its ceiling over the
last minute, and falls one notch when it has been calm for a while. Holding the top
step for ``attack_after_s`` raises the attack signal: logged once, and readable by any
part of the service (private delivery can switch itself on with it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("app.admission")

#: Load (share of the proven ceiling used over the last minute) that raises the step.
RISE_AT = 0.8
#: Load under which the step may fall.
FALL_AT = 0.3
#: Seconds between two looks at the load (each look is one store round trip).
LOOK_EVERY_S = 5.0
#: Seconds of calm before the step falls one notch.
CALM_FOR_S = 60.0


class CostControl:
    def __init__(
        self,
        top: int,
        attack_after_s: float,
        load: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.top = top
        self._attack_after_s = attack_after_s
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._step = 0
        self._last_look = float("-inf")
        self._calm_since = clock()
        self._top_since: float | None = None
        self._attack = False

    @property
    def step(self) -> int:
        """The current step, as last decided (never a store call)."""
        return self._step

    @property
    def under_attack(self) -> bool:
        return self._attack

    def update(self) -> int:
        """Look at the load if it is time (blocking: call from a worker thread); the step."""
        now = self._clock()
        with self._lock:
            if now - self._last_look < LOOK_EVERY_S:
                return self._step
            self._last_look = now
        load = self._load()
        with self._lock:
            self._decide(load, now)
            return self._step

    def _decide(self, load: float, now: float) -> None:
        if load >= RISE_AT:
            self._calm_since = now
            if self._step < self.top:
                self._step += 1
                logger.warning("proof-of-work cost step raised to %d (load %.2f)", self._step, load)
        elif load < FALL_AT and self._step > 0 and now - self._calm_since >= CALM_FOR_S:
            self._step -= 1
            self._calm_since = now
            logger.info("proof-of-work cost step lowered to %d", self._step)
        elif load >= FALL_AT:
            self._calm_since = now
        if self._step == self.top and self.top > 0:
            self._top_since = now if self._top_since is None else self._top_since
        else:
            self._top_since = None
        attack = self._top_since is not None and now - self._top_since >= self._attack_after_s
        if attack != self._attack:
            self._attack = attack
            if attack:
                held = self._attack_after_s
                logger.warning("attack signal raised: top cost step held %d s", held)
            else:
                logger.warning("attack signal cleared")
