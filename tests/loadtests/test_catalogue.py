"""The scenario catalogue is the one list every part of the load test reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loadtests.config import load_config
from loadtests.scenarios.catalogue import SCENARIOS, attack_checks, fixed_users
from loadtests.thresholds import Criteria, evaluate

ROOT = Path(__file__).resolve().parents[2]


def test_locust_runs_exactly_the_catalogued_users() -> None:
    # Locust monkey-patches the standard library: only ever in its own process.
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "locust"), "-f", "loadtests/locustfile.py", "--list"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert listed[:2] == ["Available", "Users:"]
    assert sorted(listed[2:]) == sorted(s.user_class.split(":")[1] for s in SCENARIOS)


def test_every_catalogued_attack_is_judged() -> None:
    criteria = Criteria.from_environment()
    threshold_names = {v.threshold.split(":")[0] for v in evaluate({}, [], {}, criteria)}
    assert {check.label for check in attack_checks()} <= threshold_names
    # Each names a limit the service really has.
    for check in attack_checks():
        assert criteria.limits[check.limit_setting]


def test_suggested_users_leave_room_for_every_fixed_scenario() -> None:
    config = load_config()
    assert fixed_users() == sum(s.fixed_users for s in SCENARIOS) > 0
    assert config.suggested_users() > fixed_users()
