"""The floor in process: a deadline from arrival, overruns counted.

The real server is measured in test_floor_process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from app.middleware.response_floor import FloorStats
from lookup_index import KeyedHasher
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of
from tests.support.dataset import Dataset


def slow_hasher(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    digest = KeyedHasher.digest

    def slowed(self: KeyedHasher, canonical: bytes) -> bytes:
        time.sleep(seconds)
        return digest(self, canonical)

    monkeypatch.setattr(KeyedHasher, "digest", slowed)


async def test_overruns_are_counted_when_the_work_outlasts_the_floor(
    app_factory: Callable[..., Any], dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, http = await app_factory(response_floor_ms=1, **GENEROUS_LIMITS)
    stats: FloorStats = app.state.floor_stats
    slow_hasher(monkeypatch, 0.02)
    probes = dataset.by_expected("affected")[:2] + dataset.by_expected("not_found")[:2]
    for probe in probes:
        assert (await http.post(CHECK, json=body_of(probe))).status_code == 200
    assert (stats.held, stats.overruns) == (4, 4)


async def test_the_deadline_runs_from_arrival_not_after_the_work(
    app_factory: Callable[..., Any], dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, http = await app_factory(response_floor_ms=500, **GENEROUS_LIMITS)
    slow_hasher(monkeypatch, 0.3)
    started = time.perf_counter()
    response = await http.post(CHECK, json=body_of(dataset.by_expected("affected")[0]))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    # 0.5 s from arrival; a sleep added after the work would make it 0.8 s.
    assert 0.5 <= elapsed < 0.75
    assert (app.state.floor_stats.held, app.state.floor_stats.overruns) == (1, 0)


async def test_every_answer_of_the_route_is_held(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    app, http = await app_factory(response_floor_ms=60, **GENEROUS_LIMITS)
    probe = dataset.by_expected("affected")[0]
    requests: list[dict[str, Any]] = [
        {"json": body_of(probe)},
        {"json": {**body_of(probe), "nir": 1}},
        {"content": b"{}", "headers": {"content-type": "text/plain"}},
        {"content": b" " * 5000, "headers": {"content-type": "application/json"}},
    ]
    for kwargs in requests:
        started = time.perf_counter()
        response = await http.post(CHECK, **kwargs)
        assert time.perf_counter() - started >= 0.06, response.status_code
    assert app.state.floor_stats.held == len(requests)


async def test_other_routes_and_a_zero_floor_are_not_held(
    app_factory: Callable[..., Any], dataset: Dataset
) -> None:
    app, http = await app_factory(response_floor_ms=50, **GENEROUS_LIMITS)
    for path in ("/healthz", "/readyz", CHECK):
        await http.get(path)
    assert app.state.floor_stats.held == 0
    off, off_http = await app_factory(response_floor_ms=0, **GENEROUS_LIMITS)
    await off_http.post(CHECK, json=body_of(dataset.by_expected("affected")[0]))
    assert (off.state.floor_stats.held, off.state.floor_stats.overruns) == (0, 0)
