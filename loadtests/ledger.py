"""What the scenarios saw, kept outside Locust's statistics: admitted requests per attacker
network and per targeted identity, and the patients' check times and outcomes.

Locust counts requests; the thresholds need more: *when* each attacker request
was admitted and on which network, to compare with the configured moving-window
limits. This module imports nothing from Locust, so the thresholds (and the unit
tests) can read a ledger without gevent's monkey-patching.

Keys are the simulated client networks and a label for the targeted identity:
synthetic values only, never a NIR.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limits import RateLimitItem, parse_many

LEDGER_FILE = "defence.json"
#: Locust's request name for the patients' checks (the latency threshold reads it).
PATIENT_CHECK_NAME = "patient: POST /v1/check"
#: Scenario names in the ledger.
LIST_ONE_NETWORK = "list_validation_one_network"
LIST_MANY_NETWORKS = "list_validation_many_networks"
NIR_COMPLETION = "nir_completion"
#: The botnet's two halves: bots sending no proof of work, and bots solving each challenge.
BOTNET_UNPROVEN = "botnet_unproven"
BOTNET_SOLVING = "botnet_solving"
#: Ledger key of attacks counted as a whole class (one ceiling), not per network.
WHOLE_CLASS = "class"
#: Cohorts of timed checks: the patients of the patient scenario, and those behind one address.
PATIENTS = "patients"
SHARED_ADDRESS = "shared_address"


@dataclass(frozen=True, slots=True)
class Tier:
    """One moving-window limit, e.g. 5 per 60 s."""

    amount: int
    window_s: float

    @classmethod
    def parse_many(cls, text: str) -> list[Tier]:
        items: list[RateLimitItem] = parse_many(text)
        return [cls(item.amount, float(item.get_expiry())) for item in items]

    def __str__(self) -> str:
        return f"{self.amount}/{self.window_s:g}s"


@dataclass(frozen=True, slots=True)
class Breach:
    """More admitted requests in one window than a tier allows."""

    key: str
    tier: str
    admitted_in_window: int
    allowed: int


def max_in_window(times: Sequence[float], window_s: float) -> int:
    """The largest number of ``times`` inside any half-open interval of ``window_s``."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, bisect_left(ordered, start + window_s, lo=i) - i)
    return best


def breaches(
    admitted: Mapping[str, Sequence[float]], tiers: Iterable[Tier], clock_slack_s: float
) -> list[Breach]:
    """Every key whose admitted requests exceed a tier in some window.

    Times are Locust's send times, which differ from the server's arrival times by
    up to ``clock_slack_s``: a window of ``window - slack`` in client time lies inside
    one server window, so more than ``amount`` admissions there is a proven breach.
    Tiers shorter than twice the slack cannot be judged from client times; skipped.
    """
    found: list[Breach] = []
    for tier in tiers:
        window = tier.window_s - clock_slack_s
        if window < tier.window_s / 2:
            continue
        for key, times in admitted.items():
            count = max_in_window(times, window)
            if count > tier.amount:
                found.append(Breach(key, str(tier), count, tier.amount))
    return found


@dataclass
class AttackLog:
    """One attack scenario: admitted send times per key, and a tally of outcomes."""

    admitted: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"admitted": dict(self.admitted), "outcomes": dict(self.outcomes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackLog:
        log = cls()
        for key, times in data.get("admitted", {}).items():
            log.admitted[key] = [float(t) for t in times]
        log.outcomes.update(data.get("outcomes", {}))
        return log

    @property
    def attempts(self) -> int:
        return sum(self.outcomes.values())


class Ledger:
    """Shared by every simulated user of one Locust process (gevent: one thread, but a lock
    keeps it correct if Locust ever runs users in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attacks: dict[str, AttackLog] = defaultdict(AttackLog)
        self.patient_check_times: list[float] = []
        self.patient_outcomes: Counter[str] = Counter()
        #: Per cohort, each check as [send time, milliseconds to the answer, answered (0/1)].
        self.cohorts: dict[str, list[list[float]]] = defaultdict(list)
        #: Per scenario, the distinct source addresses its requests came from.
        self.sources: dict[str, set[str]] = defaultdict(set)
        #: Per scenario, CPU seconds its clients spent solving proofs of work.
        self.solve_cpu_s: dict[str, float] = defaultdict(float)
        self.spawn_complete: float | None = None
        #: When Locust stopped offering load (its run time was up): the steady window's end.
        self.load_ended: float | None = None
        #: When every user had stopped (after finishing the journeys in progress).
        self.stopped: float | None = None
        self.patient_pacing_s: float | None = None
        #: Seconds after the last spawn before patients check at the steady pace.
        self.patient_warmup_s: float | None = None

    def attack(
        self, scenario: str, key: str, admitted: bool, outcome: str, at: float
    ) -> list[float]:
        """Record one attacker request; returns the key's admitted send times so far."""
        with self._lock:
            log = self.attacks[scenario]
            log.outcomes[outcome] += 1
            if admitted:
                log.admitted[key].append(at)
            return list(log.admitted.get(key, ()))

    def patient_check(self, outcome: str, at: float, elapsed_ms: float | None = None) -> None:
        with self._lock:
            self.patient_check_times.append(at)
            self.patient_outcomes[outcome] += 1
        if elapsed_ms is not None:
            self.cohort_check(PATIENTS, outcome == "ok", at, elapsed_ms)

    def cohort_check(self, cohort: str, answered: bool, at: float, elapsed_ms: float) -> None:
        with self._lock:
            self.cohorts[cohort].append([at, round(elapsed_ms, 1), float(answered)])

    def source(self, scenario: str, address: str) -> None:
        with self._lock:
            self.sources[scenario].add(address)

    def solved(self, scenario: str, cpu_s: float) -> None:
        with self._lock:
            self.solve_cpu_s[scenario] += cpu_s

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "attacks": {name: log.as_dict() for name, log in self.attacks.items()},
                "patients": {
                    "check_times": self.patient_check_times,
                    "outcomes": dict(self.patient_outcomes),
                    "pacing_s": self.patient_pacing_s,
                    "warmup_s": self.patient_warmup_s,
                },
                "cohorts": dict(self.cohorts),
                "sources": {name: sorted(found) for name, found in self.sources.items()},
                "solve_cpu_s": dict(self.solve_cpu_s),
                "spawn_complete": self.spawn_complete,
                "load_ended": self.load_ended,
                "stopped": self.stopped,
            }

    def write(self, directory: Path) -> Path:
        path = directory / LEDGER_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict()))
        tmp.replace(path)
        return path


def read_ledger(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / LEDGER_FILE).read_text())
    return data
