"""The steady-rate threshold judges the service, not the ramp-up of the run.

The ledgers here are simulated with the patient scenario's own schedule (one journey
per user per pacing interval at a random phase, checks a page load and a think time
after the journey starts), so a ramp-up looks as it does in a real run.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from app.settings import Settings
from loadtests.config import load_config
from loadtests.steady_rate import MIN_WINDOW_S, steady_window
from loadtests.thresholds import Criteria, Verdict, evaluate, render

SPAWN_RATE = 50.0
#: run.sh's --stop-timeout: after the run time, journeys in progress get this long to finish.
STOP_TIMEOUT_S = 5.0


def simulated_run(
    duration_s: float,
    target_rate: float = 15.0,
    think: tuple[float, float] = (1.0, 4.0),
    seed: int = 1,
    load_ended: bool = True,
) -> dict[str, Any]:
    """A ledger as the patient scenario writes it, for a service that keeps up exactly."""
    config = replace(
        load_config(), target_rate=target_rate, think_min_s=think[0], think_max_s=think[1]
    )
    users = config.suggested_users()
    pacing = config.patient_pacing_s(users)
    rng = random.Random(seed)
    floor_s = config.floor_ms / 1000
    times: list[float] = []
    for user in range(users):
        journey = user / SPAWN_RATE + rng.uniform(0, pacing)
        while journey < duration_s:
            check = journey + rng.uniform(0.2, 0.8) + rng.uniform(*think)
            times.append(check)
            if rng.random() < config.mean_checks_per_patient - 1:
                times.append(check + floor_s + rng.uniform(*think))
            journey += pacing
    # After the run time, users finish the journey in progress (its second check), if quick.
    stopped = duration_s + min(STOP_TIMEOUT_S, config.journey_max_s)
    return {
        "spawn_complete": users / SPAWN_RATE,
        "load_ended": duration_s if load_ended else None,
        "stopped": stopped,
        "patients": {
            "check_times": sorted(t for t in times if t < stopped),
            "pacing_s": pacing,
            "warmup_s": config.steady_warmup_s,
        },
    }


def criteria(target_rate: float = 15.0) -> Criteria:
    service = Settings()
    return Criteria(
        floor_ms=service.response_floor_ms,
        p99_margin_ms=100,
        target_rate=target_rate,
        min_rate_share=0.9,
        limits={
            "limits_per_network": service.limits_per_network,
            "limits_per_identity": service.limits_per_identity,
        },
        clock_slack_s=2,
    )


def rate_verdict(ledger: dict[str, Any], target_rate: float = 15.0) -> Verdict:
    verdicts = evaluate({}, [], ledger, criteria(target_rate))
    (verdict,) = (v for v in verdicts if "steady rate" in v.threshold)
    return verdict


@pytest.mark.parametrize("seed", range(5))
def test_a_long_run_at_the_target_passes_and_is_measured_near_it(seed: int) -> None:
    ledger = simulated_run(60, seed=seed)
    window = steady_window(ledger)
    assert window is not None
    assert window.judged
    assert window.rate == pytest.approx(15, rel=0.08)
    assert rate_verdict(ledger).passed


@pytest.mark.parametrize("seed", range(5))
def test_the_readme_quick_run_is_not_failed_by_its_own_ramp_up(seed: int) -> None:
    """The issue-18 regression: a 15 s run at the default think times ended FAILED
    ("11.6 checks/s over the last 9 s") while the service kept up perfectly."""
    verdict = rate_verdict(simulated_run(15, seed=seed))
    assert verdict.passed
    assert not verdict.judged
    assert verdict.measured.startswith("not judged")


@pytest.mark.parametrize("seed", range(5))
def test_a_short_run_with_short_journeys_is_judged_and_passes(seed: int) -> None:
    # The smoke run's shape (tests/loadtests/test_loadtest_smoke.py): think 0.2-1 s, 15 s.
    verdict = rate_verdict(simulated_run(15, think=(0.2, 1.0), seed=seed))
    assert verdict.judged, verdict.measured
    assert verdict.passed, verdict.measured


def test_the_window_ends_when_the_load_ends_not_when_users_stopped() -> None:
    ledger = simulated_run(60)
    window = steady_window(ledger)
    assert window is not None
    assert window.end == 60
    # Without the load's end (an old ledger), the tail of finishing journeys counts and
    # drags the rate down: the reason the window stops at test_stopping.
    old = steady_window({**ledger, "load_ended": None})
    assert old is not None
    assert old.rate < window.rate


def test_a_service_that_falls_behind_fails() -> None:
    # Offered 15 checks/s, but judged against 20: the same schedule must fail.
    verdict = rate_verdict(simulated_run(60), target_rate=20)
    assert verdict.judged
    assert not verdict.passed


def test_the_window_starts_after_the_warm_up() -> None:
    ledger = simulated_run(60)
    window = steady_window(ledger)
    assert window is not None
    assert window.start == ledger["spawn_complete"] + ledger["patients"]["warmup_s"]
    assert window.warmup_s == load_config().steady_warmup_s
    # A burst during the ramp (before the window) changes nothing.
    burst = [ledger["spawn_complete"] + i * 0.001 for i in range(1000)]
    ledger["patients"]["check_times"] = burst + ledger["patients"]["check_times"]
    again = steady_window(ledger)
    assert again is not None
    assert again.checks == window.checks


def test_too_short_means_shorter_than_one_pacing_interval() -> None:
    ledger = {
        "spawn_complete": 0.0,
        "load_ended": 10.0,
        "patients": {"check_times": [5.0, 6.0, 7.0], "pacing_s": 8.0, "warmup_s": 4.0},
    }
    window = steady_window(ledger)
    assert window is not None
    assert (window.seconds, window.needed_s, window.judged) == (6.0, 8.0, False)
    assert window.duration_hint_s() == 2
    ledger["load_ended"] = 12.0
    later = steady_window(ledger)
    assert later is not None
    assert later.judged
    assert later.rate == pytest.approx(3 / 8)
    # A tiny pacing interval still needs MIN_WINDOW_S of steady load.
    ledger["patients"]["pacing_s"] = 0.5
    short = steady_window({**ledger, "load_ended": 4.0 + MIN_WINDOW_S - 0.1})
    assert short is not None
    assert not short.judged


def test_a_run_whose_spawning_never_completed_is_not_judged() -> None:
    ledger = {"spawn_complete": None, "stopped": 10.0, "patients": {}}
    assert steady_window(ledger) is None
    verdict = rate_verdict(ledger)
    assert (verdict.passed, verdict.judged) == (True, False)


def test_the_summary_says_not_judged(tmp_path: Any) -> None:
    verdict = rate_verdict(simulated_run(15))
    text = render([verdict], {}, tmp_path, 0)
    assert "| not judged |" in text
    assert text.startswith(f"# Load test {tmp_path.name}: PASSED")
