"""The arithmetic the attacker thresholds rest on: windows, slack, the ledger file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.ledger import Ledger, Tier, breaches, max_in_window, read_ledger


def test_tiers_parse_the_service_limit_syntax() -> None:
    assert Tier.parse_many("5/minute;20/hour;50/day") == [
        Tier(5, 60.0),
        Tier(20, 3600.0),
        Tier(50, 86400.0),
    ]


@pytest.mark.parametrize(
    ("times", "window", "expected"),
    [
        ([], 60, 0),
        ([0, 1, 2, 3, 4], 60, 5),
        ([0, 59.9, 60, 119.9], 60, 2),  # half-open: 60 falls out of [0, 60)
        ([0, 30, 60, 90], 61, 3),
        ([5, 1, 3, 2, 4], 2.5, 3),  # order does not matter
    ],
)
def test_max_in_window(times: list[float], window: float, expected: int) -> None:
    assert max_in_window(times, window) == expected


def test_five_a_minute_is_not_a_breach_of_five_per_minute() -> None:
    admitted = {"net-a": [0, 1, 2, 3, 4, 70, 71, 72, 73, 74]}
    assert breaches(admitted, [Tier(5, 60)], clock_slack_s=2) == []


def test_a_sixth_request_within_the_minute_is_a_breach() -> None:
    admitted = {"net-a": [0, 1, 2, 3, 4, 50], "net-b": [0]}
    (found,) = breaches(admitted, [Tier(5, 60)], clock_slack_s=2)
    assert (found.key, found.admitted_in_window, found.allowed) == ("net-a", 6, 5)


def test_slack_forgives_only_what_clocks_can_explain() -> None:
    # The 6th at 59 s (client time) may have reached the server after 60 s: not proven.
    assert breaches({"n": [0, 1, 2, 3, 4, 59]}, [Tier(5, 60)], clock_slack_s=2) == []
    # At 57 s it cannot have.
    assert breaches({"n": [0, 1, 2, 3, 4, 57]}, [Tier(5, 60)], clock_slack_s=2)


def test_tiers_too_short_for_client_clocks_are_not_judged() -> None:
    assert breaches({"n": [0.0] * 100}, [Tier(40, 1)], clock_slack_s=2) == []


def test_ledger_round_trip(tmp_path: Path) -> None:
    ledger = Ledger()
    assert ledger.attack("s", "net-a", True, "admitted (200)", 10.0) == [10.0]
    assert ledger.attack("s", "net-a", False, "refused (429)", 11.0) == [10.0]
    ledger.patient_check("ok", 12.0)
    ledger.spawn_complete, ledger.stopped, ledger.patient_pacing_s = 5.0, 20.0, 1.0
    ledger.write(tmp_path)
    data = read_ledger(tmp_path)
    assert data["attacks"]["s"] == {
        "admitted": {"net-a": [10.0]},
        "outcomes": {"admitted (200)": 1, "refused (429)": 1},
    }
    assert json.loads((tmp_path / "defence.json").read_text())["patients"]["outcomes"] == {"ok": 1}
