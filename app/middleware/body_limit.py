"""Reads request bodies up to a byte cap, counting as bytes arrive (chunked bodies too).

The body is read here, before any route runs, so a large or slow upload is
refused with the constant 413 without reaching parsing or hashing. On
``counted_paths`` the refusal is left to the route, after its rate limits, so
an oversize attempt counts like any other (and is answered 429 past the limit):
the route gets an empty body and ``scope[BODY_TOO_LARGE]`` set.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PAYLOAD_TOO_LARGE, error_response
from app.padded_json import PaddedJSON

BODY_TOO_LARGE = "selfcheck.body_too_large"


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        renderer: PaddedJSON,
        counted_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.renderer = renderer
        self.counted_paths = frozenset(counted_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in self.counted_paths:
            scope[BODY_TOO_LARGE] = True
            given = False

            async def empty() -> Message:
                # The rest of the upload is never read: an empty body, then "gone".
                nonlocal given
                if given:
                    return {"type": "http.disconnect"}
                given = True
                return {"type": "http.request", "body": b"", "more_body": False}

            await self.app(scope, empty, send)
            return
        await error_response(self.renderer, PAYLOAD_TOO_LARGE)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
