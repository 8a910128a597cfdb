"""Load-test settings: ``LOADTEST_*`` variables for the test, ``SELFCHECK_*`` for the service.

The limits, floor and response size the thresholds are judged against are read
through :class:`app.settings.Settings` from the same ``SELFCHECK_*`` variables the
API under test was started with (``run.sh`` exports them for both), so the test
can never judge the service against limits it was not configured with.

Nothing is read at import time: call :func:`load_config`.

``python -m loadtests.config suggest-users`` prints how many Locust users reach
``LOADTEST_TARGET_RATE`` (the runner's default for ``--users``);
``python -m loadtests.config steady-plan USERS|auto SPAWN_RATE`` says from when the
steady rate is judged and whether ``LOADTEST_DURATION`` is long enough to judge it.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from app.settings import Settings
from loadtests.scenarios.catalogue import fixed_users
from loadtests.steady_rate import MIN_WINDOW_S

#: Allowance for loading the page, the widget and their assets at the start of a journey.
PAGE_LOAD_ALLOWANCE_S = 1.0


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LOADTEST_{name}", default)


def _float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


def _flag(name: str) -> bool:
    return _env(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class LoadTestConfig:
    host: str
    #: Probes written by ``lookup-index generate``: queries with their expected answers.
    probes: Path
    #: The generated export itself, i.e. what a list-validation attacker replays.
    leaked_list: Path
    #: Where the scenarios write their ledger (``defence.json``); None: nowhere.
    run_dir: Path | None
    duration_s: float
    #: Patient checks per second the run must sustain for its latency figure to count.
    target_rate: float
    #: Share of the target the steady-state rate must reach (the arrival process is random).
    min_rate_share: float
    #: p99 of patient checks must stay within floor + this margin.
    p99_margin_ms: float
    think_min_s: float
    think_max_s: float
    #: Patients who check a second identity (a relative) after the first answer.
    second_check_share: float
    #: Patients who mistype (then correct and check again).
    typo_share: float
    #: Patients who submit one of the probes file's invalid queries (and give up).
    invalid_share: float
    #: Seconds the list-validation attacker stays on one network before going distributed.
    single_network_s: float
    #: Tolerate 404 on the page and widget routes (while the widget does not exist yet).
    widget_optional: bool
    #: Clock slack (s) between Locust's send time and the server's arrival time.
    clock_slack_s: float
    #: Distinct loopback source addresses the botnet uses (and must be seen using).
    botnet_addresses: int
    #: Share of one core the solving bots may spend on Argon2id (they pace themselves).
    botnet_solve_share: float
    #: Under the botnet, patients' check p95 must stay within floor + this margin.
    botnet_p95_margin_ms: float
    #: Share of patient checks that must be answered under the botnet and behind one address.
    answered_share: float
    seed: int
    service: Settings

    @property
    def floor_ms(self) -> int:
        return self.service.response_floor_ms

    @property
    def p99_budget_ms(self) -> float:
        return self.floor_ms + self.p99_margin_ms

    @property
    def mean_checks_per_patient(self) -> float:
        # A typo is always followed by a corrected check; an invalid query (a patient who
        # gives up) never; a correct first check, sometimes by a relative's.
        correct = 1 - self.typo_share - self.invalid_share
        return 1 + self.typo_share + correct * self.second_check_share

    @property
    def journey_max_s(self) -> float:
        """Longest patient journey: page load, think, check, think, check."""
        check_s = self.floor_ms / 1000 + 0.1
        return PAGE_LOAD_ALLOWANCE_S + 2 * (self.think_max_s + check_s)

    @property
    def steady_warmup_s(self) -> float:
        """Seconds after the last spawn before patient checks arrive at the steady pace.

        Each patient user starts its journeys at a random phase, one per pacing
        interval, so journeys start at the steady pace from its spawn on; a journey's
        checks follow its start by at most the longest journey. Past that, the check
        rate is the target (``loadtests/steady_rate.py`` judges from there).
        """
        return self.journey_max_s

    def patient_pacing_s(self, patient_users: int) -> float:
        """Seconds between the starts of one user's journeys so that all reach the target."""
        return max(patient_users, 1) * self.mean_checks_per_patient / self.target_rate

    def shortest_judged_run_s(self, users: int, spawn_rate: float) -> float:
        """Run time whose steady window (after spawning and the warm-up) holds one pacing
        interval, the least ``loadtests/steady_rate.py`` judges."""
        pacing = self.patient_pacing_s(max(users - fixed_users(), 1))
        return users / spawn_rate + self.steady_warmup_s + max(pacing, MIN_WINDOW_S)

    def steady_plan(self, users: int, spawn_rate: float) -> str:
        """What the runner says about the steady-rate window before Locust starts."""
        shortest = math.ceil(self.shortest_judged_run_s(users, spawn_rate))
        plan = (
            f"the steady rate is judged from {self.steady_warmup_s:.1f} s after the last user "
            f"spawned (warm-up: the longest patient journey) to the end of the load"
        )
        if self.duration_s < shortest:
            return f"{plan}; {self.duration_s:g} s is too short, it will say 'not judged' " + (
                f"(judged from --duration {shortest})"
            )
        return f"{plan}; judged from --duration {shortest}, this run has {self.duration_s:g}"

    def suggested_users(self) -> int:
        # 25 % headroom: a journey must fit inside its pacing interval to keep the rate.
        patients = math.ceil(
            self.target_rate * self.journey_max_s * 1.25 / self.mean_checks_per_patient
        )
        return patients + fixed_users()


@cache
def load_config() -> LoadTestConfig:
    run_dir = _env("RUN_DIR", "")
    config = LoadTestConfig(
        host=_env("HOST", "http://127.0.0.1:8000"),
        probes=Path(_env("PROBES", "probes.csv")),
        leaked_list=Path(_env("LEAKED_LIST", "export.csv")),
        run_dir=Path(run_dir) if run_dir else None,
        duration_s=_float("DURATION", 60),
        target_rate=_float("TARGET_RATE", 15),
        min_rate_share=_float("MIN_RATE_SHARE", 0.9),
        p99_margin_ms=_float("P99_MARGIN_MS", 100),
        think_min_s=_float("THINK_MIN_S", 1),
        think_max_s=_float("THINK_MAX_S", 4),
        second_check_share=_float("SECOND_CHECK_SHARE", 0.3),
        typo_share=_float("TYPO_SHARE", 0.1),
        invalid_share=_float("INVALID_SHARE", 0.05),
        single_network_s=_float("SINGLE_NETWORK_S", 0) or min(20.0, _float("DURATION", 60) / 3),
        widget_optional=_flag("WIDGET_OPTIONAL"),
        clock_slack_s=_float("CLOCK_SLACK_S", 2),
        botnet_addresses=int(_env("BOTNET_ADDRESSES", "2000")),
        # A tenth of a core: on 2 shared cores more of the attacker's solving measures the
        # load generator's CPU in the patients' latency, not the service (docs/BENCHMARKS.md).
        botnet_solve_share=_float("BOTNET_SOLVE_SHARE", 0.1),
        botnet_p95_margin_ms=_float("BOTNET_P95_MARGIN_MS", 500),
        answered_share=_float("ANSWERED_SHARE", 0.99),
        seed=int(_env("SEED", "2026")),
        service=Settings(),
    )
    if config.target_rate <= 0:
        raise ValueError("LOADTEST_TARGET_RATE must be positive")
    if not 0 < config.botnet_solve_share <= 1:
        raise ValueError("LOADTEST_BOTNET_SOLVE_SHARE must be in (0, 1]")
    if config.botnet_addresses < 1:
        raise ValueError("LOADTEST_BOTNET_ADDRESSES must be at least 1")
    if not 0 <= config.think_min_s <= config.think_max_s:
        raise ValueError("need 0 <= LOADTEST_THINK_MIN_S <= LOADTEST_THINK_MAX_S")
    return config


USAGE = "usage: python -m loadtests.config suggest-users | steady-plan USERS|auto SPAWN_RATE"


def main(argv: list[str]) -> int:
    if argv == ["suggest-users"]:
        print(load_config().suggested_users())
        return 0
    if len(argv) == 3 and argv[0] == "steady-plan":
        config = load_config()
        try:
            users = config.suggested_users() if argv[1] == "auto" else int(argv[1])
            spawn_rate = float(argv[2])
        except ValueError:
            users = spawn_rate = 0
        if users > 0 and spawn_rate > 0:
            print(f"{users} users; {config.steady_plan(users, spawn_rate)}")
            return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
