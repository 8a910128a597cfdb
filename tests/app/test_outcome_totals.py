"""Outcomes reach the DPO only as daily totals of days that are over, small counts hidden."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from limits.storage import MemoryStorage

from app import outcome_totals
from app import state as app_state
from app.outcome_totals import DailyOutcomes, report, store_key
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of
from tests.support.dataset import Dataset


def test_counts_reach_the_store_only_when_the_day_is_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = MemoryStorage()
    monkeypatch.setattr(outcome_totals, "utc_day", lambda: "2026-11-30")
    totals = DailyOutcomes(storage)
    for found in [True] * 3 + [False] * 12:
        totals.count(found)
    assert storage.get(store_key("2026-11-30", "not_found")) == 0  # nothing live
    monkeypatch.setattr(outcome_totals, "utc_day", lambda: "2026-12-01")
    totals.count(False)  # the first check of the next day publishes the last one
    assert report(storage, 2, today=date(2026, 12, 1)) == [
        "2026-11-30 affected=< 10 not_found=12",
        "2026-11-29 affected=< 10 not_found=< 10",
    ]


async def test_the_service_counts_each_answered_check_once(
    app_factory: Callable[..., Any], dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[DailyOutcomes] = []

    def recording(storage: Any) -> DailyOutcomes:
        made.append(DailyOutcomes(storage))
        return made[-1]

    monkeypatch.setattr(app_state, "DailyOutcomes", recording)
    app, http = await app_factory(**GENEROUS_LIMITS)
    for probe in dataset.by_expected("affected")[:2] + dataset.by_expected("not_found")[:1]:
        assert (await http.post(CHECK, json=body_of(probe))).status_code == 200
    await http.post(CHECK, json={"nir": "x"})  # refused before the hash: not an outcome
    (totals,) = made
    storage = totals._storage
    assert storage.get(store_key(outcome_totals.utc_day(), "affected")) == 0  # not live
    totals.flush()  # what the lifespan does at shutdown
    assert storage.get(store_key(outcome_totals.utc_day(), "affected")) == 2
    assert storage.get(store_key(outcome_totals.utc_day(), "not_found")) == 1
    assert b"affected" not in app.state.metrics.exposition()
