"""The patients' steady rate: checks per second once the ramp-up is over, or "not judged".

A run starts with a ramp: users spawn, and each patient's first check comes a page
load and a think time after its journey starts. Counting from the start (or from the
last spawn) measures the ramp, not the service, and made every short run fail. So
the window starts ``warmup_s`` after the last user spawned, a warm-up the patient
scenario states in the ledger (its longest journey, page to last check: by then
journeys started at the steady pace have had time to reach every check), and ends
when Locust stopped offering load (``test_stopping``: after it, users only finish
the journeys in progress, a tail that is not the target rate either).

A window shorter than one pacing interval (every patient user starts exactly one
journey per interval) would count a random subset of users' phases: too short to
judge, so the rate is "not judged" and the run does not fail on it.

No Locust import here: pytest imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Never judge a rate on fewer seconds than this, even when the pacing is shorter.
MIN_WINDOW_S = 5.0


@dataclass(frozen=True, slots=True)
class SteadyWindow:
    """Patient checks between ``start`` and ``end`` (Unix times), and what a judgement needs."""

    start: float
    end: float
    checks: int
    #: Shortest window that can be judged (one pacing interval, at least MIN_WINDOW_S).
    needed_s: float
    #: Seconds from the last spawn to ``start``.
    warmup_s: float
    #: Seconds from the last spawn to ``end`` (what the run offered after spawning).
    after_spawn_s: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def judged(self) -> bool:
        return self.seconds >= self.needed_s

    @property
    def rate(self) -> float:
        return self.checks / self.seconds if self.seconds > 0 else 0.0

    def duration_hint_s(self) -> int:
        """Extra seconds of load a run like this one would need to be judged."""
        return math.ceil(self.needed_s - self.seconds)


def steady_window(ledger: dict[str, Any]) -> SteadyWindow | None:
    """The steady part of a run from its ledger; None if spawning never completed."""
    spawned = ledger.get("spawn_complete")
    # Ledgers written before ``load_ended`` existed only know when the users stopped.
    end = ledger.get("load_ended") or ledger.get("stopped")
    if spawned is None or end is None:
        return None
    patients = ledger.get("patients", {})
    pacing = float(patients.get("pacing_s") or 0.0)
    warmup = float(patients.get("warmup_s") or pacing)
    start = spawned + warmup
    checks = sum(1 for t in patients.get("check_times", ()) if start <= t < end)
    return SteadyWindow(
        start=start,
        end=end,
        checks=checks,
        needed_s=max(pacing, MIN_WINDOW_S),
        warmup_s=warmup,
        after_spawn_s=max(0.0, end - spawned),
    )
