"""Reads request bodies up to a byte cap, counting as bytes arrive (chunked bodies too).

The body is read here, before any route runs, so a large upload never reaches parsing
or hashing. An oversize body is not answered here: the app gets a ``receive`` that
raises :class:`~app.errors.PayloadTooLarge` when the body is read, and the one error
handler renders it. The check route reads its body only after its rate limits have
counted the attempt, so an oversize attempt counts like any other (and is answered
429 past a limit); the rest of the upload is never read. A body still incomplete
``timeout_seconds`` after the head is refused the same way, with
:class:`~app.errors.RequestTimeout` (408): a client dripping its body holds a
connection for that long at most, and spends its budget like any other attempt.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge, RequestTimeout


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_seconds: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self.app(scope, _refused, send)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout_seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        break
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self.app(scope, _timed_out, send)
            return
        if size > self.max_bytes:
            await self.app(scope, _refused, send)
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refused() -> Message:
    raise PayloadTooLarge


async def _timed_out() -> Message:
    raise RequestTimeout


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
