"""Turns any unexpected exception into the constant 500, logged without request data."""

from __future__ import annotations

import logging
import traceback

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import InternalError, render_error
from app.padded_json import PaddedJSON

logger = logging.getLogger("app.errors")


class CatchAllMiddleware:
    def __init__(self, app: ASGIApp, *, renderer: PaddedJSON) -> None:
        self.app = app
        self.renderer = renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            # Exception messages may quote input; log the type and the frames only.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            logger.error("unhandled %s on %s\n%s", type(exc).__name__, scope["path"], frames)
            if not started:
                await render_error(self.renderer, InternalError)(scope, receive, send)
