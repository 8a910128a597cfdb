"""The outermost layer: counts every request and hands it to the request log, once it is sent.

It opens the request's :class:`~app.request_note.RequestNote` (the code underneath
writes the refusing bucket or the failing component into it), measures from arrival
to the last byte sent (floor included), and labels with the route *template*: an
unknown path is ``other``, so no path a client invents becomes a label or a log field.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import Metrics, status_class
from app.request_note import RequestNote, current_note


@dataclass(frozen=True, slots=True)
class Observed:
    """One finished request, as the metrics and the log line see it."""

    route: str
    status: int
    duration_ms: float
    note: RequestNote
    scope: Scope


class ObserveMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        routes: Collection[str],
        log: Callable[[Observed], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        # Filled by create_app once the routers are included (a live view, read per request).
        self.routes = routes
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        note = RequestNote()
        token = current_note.set(note)
        status = 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            current_note.reset(token)
            path = scope.get("path", "")
            route = path if path in self.routes else "other"
            self._count(route, status, note)
            if self.log is not None:
                elapsed = (time.perf_counter() - started) * 1000
                await self.log(Observed(route, status, round(elapsed, 1), note, scope))

    def _count(self, route: str, status: int, note: RequestNote) -> None:
        m = self.metrics
        m.requests.labels(route, status_class(status)).inc()
        if status == 429 and note.refused_by is not None:
            m.refusals.labels(note.refused_by, note.refused_class or "any").inc()
        # /readyz's 503 is the store check itself, for the load balancer; not a refused request.
        if status == 503 and route != "/readyz":
            cause = note.unavailable or "overload"
            m.unavailable.labels(cause).inc()
            if cause == "store":
                m.store_errors.inc()
