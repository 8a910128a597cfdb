"""Overload answers the uniform 503 (padded, floored), from an in-flight cap on the hash."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lookup_index import KeyedHasher
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of
from tests.app.middleware.test_response_floor import slow_hasher
from tests.support.dataset import Dataset


async def test_checks_past_the_cap_get_the_padded_503(
    app_factory: Callable[..., Any], dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, http = await app_factory(max_in_flight=2, hash_concurrency=2, **GENEROUS_LIMITS)
    slow_hasher(monkeypatch, 0.4)
    probes = dataset.by_expected("affected")[:3] + dataset.by_expected("not_found")[:3]
    answers = await asyncio.gather(*(http.post(CHECK, json=body_of(p)) for p in probes))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 503, 503, 503, 503]
    refused = [a for a in answers if a.status_code == 503]
    assert {a.json()["error"] for a in refused} == {"unavailable"}
    assert {len(a.content) for a in answers} == {8192}
    # The slots are free again once the answers are out.
    assert (await http.post(CHECK, json=body_of(probes[0]))).status_code == 200


async def test_the_overload_503_is_held_to_the_floor_and_frees_no_slot_late(
    app_factory: Callable[..., Any], dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused check waits for the floor like any answer; a held answer holds no slot."""
    _, http = await app_factory(
        max_in_flight=1, hash_concurrency=1, response_floor_ms=300, **GENEROUS_LIMITS
    )
    slow_hasher(monkeypatch, 0.1)
    hashing = threading.Event()
    slowed = KeyedHasher.digest

    def announced(self: KeyedHasher, canonical: bytes) -> bytes:
        hashing.set()
        return slowed(self, canonical)

    monkeypatch.setattr(KeyedHasher, "digest", announced)
    probe = dataset.by_expected("affected")[0]

    async def timed() -> tuple[int, float]:
        started = time.perf_counter()
        response = await http.post(CHECK, json=body_of(probe))
        return response.status_code, time.perf_counter() - started

    first = asyncio.create_task(timed())
    # The second check arrives while the first holds the only slot (not after a fixed
    # sleep, which a loaded machine can outlast before the first even reaches the hash).
    assert await asyncio.to_thread(hashing.wait, 5)
    status, elapsed = await timed()
    assert status == 503
    assert elapsed >= 0.3
    assert (await first)[0] == 200
    # The first answer was ready after 0.1 s and held 0.2 s more: its slot was free then.
    first_again = asyncio.create_task(timed())
    await asyncio.sleep(0.2)
    assert (await timed())[0] == 200
    assert (await first_again)[0] == 200
