"""The steady-rate threshold judges the service, not the ramp-up of the run.

The ledgers here are simulated with the patient scenario's own schedule
(``simulated_runs.py``), so a ramp-up looks as it does in a real run: with the judge
of before issue 18, these simulations reproduce the figures the issue reported.
"""

from __future__ import annotations

import pytest

from loadtests.config import load_config
from loadtests.steady_rate import MIN_WINDOW_S, steady_window
from tests.loadtests.simulated_runs import rate_verdict, simulated_run


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
