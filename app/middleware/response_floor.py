"""Holds every response of the guarded routes until ``arrival + floor``.

Timing must not tell a hit from a miss, a malformed query from a valid one,
or a rate-limited request from an answered one. The deadline runs from the
moment the request is complete (its last body byte), not from its head: a
client who sends the body late would otherwise shorten the floor and see the
work's duration. The whole response (start and body) is released at that
deadline. A body that never completes still has a deadline, ``max_body_seconds``
after the head (the body read timeout). Responses that are ready late are
sent at once and counted as overruns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("app.floor")
OVERRUN_WARNING_INTERVAL = 60.0


class FloorStats:
    """Counters an operator (and the tests) can read: how often the floor was too short."""

    def __init__(
        self,
        on_held: Callable[[], object] | None = None,
        on_overrun: Callable[[], object] | None = None,
    ) -> None:
        self.held = 0
        self.overruns = 0
        self._last_warning = float("-inf")
        # The metrics' counters: these per-process fields die with the process, those not.
        self._on_held = on_held
        self._on_overrun = on_overrun

    def count_held(self) -> None:
        self.held += 1
        if self._on_held is not None:
            self._on_held()

    def count_overrun(self, now: float) -> None:
        """Count it; warn at most once a minute, so an overload cannot flood the log."""
        self.overruns += 1
        if self._on_overrun is not None:
            self._on_overrun()
        if now - self._last_warning >= OVERRUN_WARNING_INTERVAL:
            self._last_warning = now
            logger.warning(
                "response floor overrun: %d responses ready after their deadline so far; "
                "raise SELFCHECK_RESPONSE_FLOOR_MS or add capacity",
                self.overruns,
            )


class ResponseFloorMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        floor_seconds: float,
        paths: Collection[str],
        stats: FloorStats,
        methods: Collection[str] = ("POST",),
        max_body_seconds: float = 10.0,
    ) -> None:
        self.app = app
        self.floor_seconds = floor_seconds
        self.max_body_seconds = max_body_seconds
        self.paths = frozenset(paths)
        self.methods = frozenset(methods)
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            # A zero floor is "off" (tests, benchmarks): nothing to hold, no overrun to count.
            or self.floor_seconds <= 0
            or scope["path"] not in self.paths
            or scope["method"] not in self.methods
        ):
            await self.app(scope, receive, send)
            return
        # time.monotonic, not loop.time(): uvloop's loop clock is cached per iteration in
        # whole milliseconds, so a deadline measured on it can be released a little early.
        now = time.monotonic
        arrived = now()
        complete: float | None = None

        async def timed_receive() -> Message:
            nonlocal complete
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                complete = min(now(), arrived + self.max_body_seconds)
            return message

        def deadline() -> float:
            if complete is not None:
                return complete + self.floor_seconds
            # Never complete: answered without reading it (405), or refused when it was
            # still incomplete at the cap (408), which then counts as its completion.
            if now() - arrived >= self.max_body_seconds:
                return arrived + self.max_body_seconds + self.floor_seconds
            return arrived + self.floor_seconds

        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await self._release(deadline(), held, send)

        await self.app(scope, timed_receive, hold)

    async def _release(self, deadline: float, held: list[Message], send: Send) -> None:
        remaining = deadline - time.monotonic()
        self.stats.count_held()
        if remaining > 0:
            # A timer may fire up to a clock tick early (uvloop rounds to milliseconds):
            # sleep again until the deadline has really passed, so no answer is early.
            while remaining > 0:
                await asyncio.sleep(remaining)
                remaining = deadline - time.monotonic()
        else:
            self.stats.count_overrun(time.monotonic())
        messages = held[:]
        held.clear()
        for message in messages:
            await send(message)
