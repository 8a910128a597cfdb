"""uvicorn's httptools protocol with a deadline and a size cap on every request head.

uvicorn closes a keep-alive connection only after it has answered once, and
cancels even that timer on every byte received. A socket that never sends
anything, or drips one header byte a second, is held forever: enough of them
exhaust the file descriptors and cut everyone off. And httptools, uvicorn's
default parser, buffers a header of any size (128 MiB cost 18.5 s of CPU).

Here a connection must deliver a complete request head within
``timeout_keep_alive`` of opening or of its previous answer, whatever it sends
meanwhile, and a head may not exceed ``h11_max_incomplete_event_size`` bytes
(uvicorn's name for the same cap under h11): the bytes are counted as they
arrive, so at most one read past the cap is ever buffered, then the connection
gets a 400 and is closed. h11 would enforce the cap itself, but parses at 1.6x
httptools' CPU; this costs httptools +8 % (docs/BENCHMARKS.md, "Edge").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_MAX_HEAD_BYTES = 16 * 1024


class HeadDeadline:
    """A timer armed while a connection owes us a request head; it closes the connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float, expire: Callable[[], None]):
        self.loop = loop
        self.seconds = seconds
        self.expire = expire
        self.timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        self.disarm()
        self.timer = self.loop.call_later(self.seconds, self._fire)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _fire(self) -> None:
        self.timer = None
        self.expire()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools with the head deadline and a byte count on the head."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.head_deadline = HeadDeadline(self.loop, self.timeout_keep_alive, self._head_too_late)
        self.max_head_bytes = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD_BYTES
        self.reading_head = True
        self.head_bytes = 0
        super().connection_made(transport)
        self.head_deadline.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_deadline.disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.reading_head:
            self.head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a read that completes the head may carry body bytes too.
        too_large = self.reading_head and self.head_bytes > self.max_head_bytes
        if too_large and not self.transport.is_closing():
            self.send_400_response("Request head too large.")

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.head_deadline.disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self.reading_head = True
            self.head_bytes = 0
            self.head_deadline.arm()

    def _head_too_late(self) -> None:
        if self.reading_head and not self.transport.is_closing():
            self.transport.close()
