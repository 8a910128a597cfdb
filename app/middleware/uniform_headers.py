"""Every answer of the guarded paths has the same header set and head length on the wire.

Bodies are padded to one size (``padded_json``), but the head differed too: the
status line's reason phrase ("OK" and "Unprocessable Entity" are 18 bytes
apart) and a ``Retry-After`` only on refusals. A TLS observer counting bytes
could tell "answered" from "refused". Here every answer gets a ``Retry-After``
(refusals keep their own value, of the same length) and an ``X-Padding`` header
whose length makes reason phrase + padding constant, for the reason phrases
uvicorn writes (Python's ``http.HTTPStatus``). Behind nginx over HTTP/2 there is
no reason phrase: the proxy replaces this header with its own (deploy/nginx).
"""

from __future__ import annotations

import http
from collections.abc import Collection

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Every status /v1/check can answer with.
WIRE_STATUSES = (200, 404, 405, 408, 413, 415, 422, 429, 500, 503)
#: Refusals say 60 (rate limited) or 30 (unavailable): two digits either way.
DEFAULT_RETRY_AFTER = "60"
PADDING_HEADER = "x-padding"


def reason_phrase(status: int) -> str:
    return http.HTTPStatus(status).phrase


_LONGEST_REASON = max(len(reason_phrase(status)) for status in WIRE_STATUSES)


def padding_for(status: int) -> str:
    """At least one character, so the header is there on every answer."""
    return "0" * (1 + _LONGEST_REASON - len(reason_phrase(status)))


class UniformHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        async def send_uniform(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                retry_after = headers.get("retry-after", DEFAULT_RETRY_AFTER)
                # Removed and appended: the same order on every answer, not only the same set.
                del headers["retry-after"]
                headers["retry-after"] = retry_after
                headers[PADDING_HEADER] = padding_for(message["status"])
            await send(message)

        await self.app(scope, receive, send_uniform)
