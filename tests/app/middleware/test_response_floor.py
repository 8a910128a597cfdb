"""The floor in process: a deadline from the complete request, overruns counted.

The real server is measured in test_floor_process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.middleware.response_floor import FloorStats, ResponseFloorMiddleware
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


async def _released_after_parts(
    parts: list[tuple[float, Message]], floor: float, reads: int, max_body_seconds: float = 5
) -> float:
    """Seconds until the answer of an app that reads ``reads`` body messages is released."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(reads):
            await receive()
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    middleware = ResponseFloorMiddleware(
        app,
        floor_seconds=floor,
        paths=[CHECK],
        stats=FloorStats(),
        max_body_seconds=max_body_seconds,
    )

    async def receive() -> Message:
        delay, message = parts.pop(0)
        await asyncio.sleep(delay)
        return message

    async def send(message: Message) -> None:
        pass

    scope = {"type": "http", "path": CHECK, "method": "POST", "headers": []}
    started = time.perf_counter()
    await middleware(scope, receive, send)
    return time.perf_counter() - started


async def _floored_after_a_late_body(
    body_delay: float, floor: float, max_body_seconds: float
) -> float:
    """Seconds from the head to the released answer, the last body byte ``body_delay`` late."""
    parts: list[tuple[float, Message]] = [
        (0.0, {"type": "http.request", "body": b"{", "more_body": True}),
        (body_delay, {"type": "http.request", "body": b"}", "more_body": False}),
    ]
    return await _released_after_parts(parts, floor, reads=2, max_body_seconds=max_body_seconds)


async def test_the_deadline_runs_from_the_last_body_byte() -> None:
    """A body sent 0.2 s after the head must not eat 0.2 s of the floor."""
    elapsed = await _floored_after_a_late_body(body_delay=0.2, floor=0.3, max_body_seconds=5)
    assert 0.5 <= elapsed < 0.7


async def test_a_slow_body_cannot_push_the_deadline_past_its_cap() -> None:
    elapsed = await _floored_after_a_late_body(body_delay=0.3, floor=0.2, max_body_seconds=0.1)
    assert 0.3 <= elapsed < 0.45  # head + 0.1 s cap + 0.2 s floor, not 0.5 s


def test_overruns_warn_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    stats = FloorStats()
    with caplog.at_level("WARNING", logger="app.floor"):
        for now in (1000.0, 1001.0, 1059.9, 1060.0, 1061.0):
            stats.count_overrun(now)
    warnings = [r.getMessage() for r in caplog.records if r.name == "app.floor"]
    assert stats.overruns == 5
    assert warnings == [
        f"response floor overrun: {n} responses ready after their deadline so far; "
        "raise SELFCHECK_RESPONSE_FLOOR_MS or add capacity"
        for n in (1, 4)
    ]


async def _released_after(
    floor: float, max_body_seconds: float, *, read_body: bool, method: str = "POST"
) -> tuple[float, int]:
    """Seconds until an app's answer is released, and how many answers the floor held."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if read_body:
            await receive()
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    stats = FloorStats()
    middleware = ResponseFloorMiddleware(
        app, floor_seconds=floor, paths=[CHECK], stats=stats, max_body_seconds=max_body_seconds
    )

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}"}  # complete in one message

    async def send(message: Message) -> None:
        pass

    scope = {"type": "http", "path": CHECK, "method": method, "headers": []}
    started = time.perf_counter()
    await middleware(scope, receive, send)
    return time.perf_counter() - started, stats.held


async def test_an_answer_sent_without_reading_the_body_is_held_from_arrival() -> None:
    elapsed, held = await _released_after(0.1, 5, read_body=False)
    assert 0.1 <= elapsed < 0.3
    assert held == 1


async def test_a_complete_body_in_one_message_is_held_from_its_arrival() -> None:
    elapsed, held = await _released_after(0.1, 5, read_body=True)
    assert 0.1 <= elapsed < 0.3
    assert held == 1


async def test_only_the_guarded_methods_are_held() -> None:
    elapsed, held = await _released_after(0.2, 5, read_body=False, method="GET")
    assert elapsed < 0.15
    assert held == 0


def test_the_body_cap_defaults_to_ten_seconds() -> None:
    middleware = ResponseFloorMiddleware(
        lambda *a: None,  # type: ignore[arg-type,return-value]
        floor_seconds=0.1,
        paths=[CHECK],
        stats=FloorStats(),
    )
    assert middleware.max_body_seconds == 10.0
    assert middleware.methods == frozenset({"POST"})


async def test_a_body_still_incomplete_at_the_cap_is_held_from_the_cap() -> None:
    """The 408 case: refused when the body timed out, held to cap + floor."""

    async def late_refusal(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.15)  # the body never completed; the cap (0.1 s) has passed
        await send({"type": "http.response.start", "status": 408, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    stats = FloorStats()
    middleware = ResponseFloorMiddleware(
        late_refusal, floor_seconds=0.1, paths=[CHECK], stats=stats, max_body_seconds=0.1
    )

    async def send(message: Message) -> None:
        pass

    scope = {"type": "http", "path": CHECK, "method": "POST", "headers": []}
    started = time.perf_counter()
    await middleware(scope, None, send)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert 0.2 <= elapsed < 0.35  # from the cap (0.1 s) + the floor, not from arrival
    assert (stats.held, stats.overruns) == (1, 0)


async def test_a_timer_that_fires_early_does_not_release_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvloop rounds its timers to milliseconds: a sleep may end a little before it should.

    Here every sleep ends 5 ms early; the answer must still wait the whole floor.
    """
    real_sleep = asyncio.sleep

    async def early_sleep(seconds: float) -> None:
        await real_sleep(max(0.0, seconds - 0.005))

    monkeypatch.setattr("app.middleware.response_floor.asyncio.sleep", early_sleep)
    elapsed, held = await _released_after(0.05, 5, read_body=True)
    assert elapsed >= 0.05
    assert held == 1


def test_the_metrics_hear_every_held_answer_and_every_overrun() -> None:
    """The hooks feed selfcheck_floor_held_total and selfcheck_floor_overruns_total."""
    heard: list[str] = []
    stats = FloorStats(
        on_held=lambda: heard.append("held"), on_overrun=lambda: heard.append("over")
    )
    stats.count_held()
    stats.count_overrun(1000.0)
    stats.count_held()
    assert heard == ["held", "over", "held"]


async def test_a_body_refused_before_its_end_is_held_from_arrival_not_from_a_part() -> None:
    """An answer given after a first part (413: too large) never saw the body complete: the
    floor runs from arrival. A part announcing more is not the body's completion."""
    first = {"type": "http.request", "body": b"{", "more_body": True}
    elapsed = await _released_after_parts([(0.15, first)], floor=0.15, reads=1)
    assert 0.15 <= elapsed < 0.27  # from arrival; from the part it would be 0.3 s


async def test_a_last_part_without_more_body_completes_the_body() -> None:
    """ASGI: ``more_body`` absent means False. A body whose last part came 0.15 s late is
    complete then, and the floor runs from there."""
    last = {"type": "http.request", "body": b"{}"}
    elapsed = await _released_after_parts([(0.15, last)], floor=0.15, reads=1)
    assert elapsed >= 0.3


async def test_a_streamed_answer_is_held_whole_and_released_once() -> None:
    """An answer in several body messages: held until its last one, then sent in order."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b", "more_body": False})

    stats = FloorStats()
    middleware = ResponseFloorMiddleware(
        app, floor_seconds=0.1, paths=[CHECK], stats=stats, max_body_seconds=5
    )
    sent: list[tuple[float, Message]] = []
    started = time.perf_counter()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append((time.perf_counter() - started, message))

    scope = {"type": "http", "path": CHECK, "method": "POST", "headers": []}
    await middleware(scope, receive, send)
    assert [m.get("body") for _, m in sent] == [None, b"a", b"b"]
    assert min(t for t, _ in sent) >= 0.1  # nothing, not even the first part, before the floor
    assert (stats.held, stats.overruns) == (1, 0)
