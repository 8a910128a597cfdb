"""What the lifespan opens once per process and hands to every request."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.admission.desk import AdmissionDesk
from app.admission.queue import AdmissionQueue
from app.advice import AdviceCatalogue
from app.check_service import CheckService
from app.padded_json import PaddedJSON, PayloadDoesNotFit
from app.rate_limit import RateLimits
from app.settings import Settings
from lookup_index import IndexReader, LookupIndexError

logger = logging.getLogger("app.startup")


class State(TypedDict):
    service: CheckService
    limits: RateLimits


class StartupRefused(Exception):
    """The service cannot start; the message is one line naming the problem."""


class StartupMessage:
    """Shared between the lifespan and :class:`OneLineStartupErrors`."""

    text = ""


def open_service(settings: Settings, limits: RateLimits, renderer: PaddedJSON) -> CheckService:
    """Open and check the index, the pepper and the catalogues; raise StartupRefused."""
    try:
        pepper = settings.load_pepper().get_secret_value()
        reader = IndexReader.open(settings.index_path, verify_checksum=True)
    except LookupIndexError as exc:
        raise StartupRefused(str(exc)) from None
    try:
        hasher = reader.hasher(pepper)
        limits.bind_pepper(pepper)
        queue = AdmissionQueue(
            settings.hash_concurrency,
            settings.admission_wait_ms / 1000,
            settings.max_in_flight,
        )
        desk = AdmissionDesk(settings, limits, pepper)
        service = CheckService(
            reader, hasher, limits, renderer, AdviceCatalogue.load(), desk, queue
        )
        for payload in service.largest_payloads():
            renderer.render(payload)
    except LookupIndexError as exc:
        reader.close()
        raise StartupRefused(str(exc)) from None
    except PayloadDoesNotFit as exc:
        reader.close()
        raise StartupRefused(f"SELFCHECK_RESPONSE_SIZE too small: {exc}") from None
    return service


def make_lifespan(
    settings: Settings, limits: RateLimits, renderer: PaddedJSON, message: StartupMessage
) -> Callable[[object], AbstractAsyncContextManager[State]]:
    @asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[State]:
        try:
            service = open_service(settings, limits, renderer)
        except StartupRefused as exc:
            message.text = f"selfcheck cannot start: {exc}"
            raise
        if limits.per_process:
            logger.warning("rate limits use memory:// storage: they are per process, not shared")
        service.desk.start()
        logger.info("index loaded; ready")
        try:
            yield {"service": service, "limits": limits}
        finally:
            service.desk.stop()
            service.reader.close()

    return lifespan


class OneLineStartupErrors:
    """Replaces the traceback in a failed start-up with one line naming the problem."""

    def __init__(self, app: ASGIApp, *, message: StartupMessage) -> None:
        self.app = app
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_one_line(event: Message) -> None:
            if event["type"] == "lifespan.startup.failed":
                event = {**event, "message": self.message.text or "selfcheck cannot start"}
            await send(event)

        # Already reported to the server in one line: no traceback on top.
        with contextlib.suppress(StartupRefused):
            await self.app(scope, receive, send_one_line)
