"""What the lifespan opens once per process and hands to every request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.admission.desk import AdmissionDesk
from app.admission.issuance import SlowapiEnvironment
from app.admission.queue import AdmissionQueue
from app.advice import AdviceCatalogue
from app.check_service import CheckService
from app.content import Content, ContentRefused
from app.delivery.mode import PrivateDelivery
from app.delivery.outbox import Outbox, redis_client
from app.delivery.outbox_entry import EntrySealer
from app.index_set import IndexSet, IndexSetRefused, index_paths, match_set, open_readers
from app.metrics_server import forget_this_process
from app.outcome_totals import DailyOutcomes
from app.padded_json import PaddedJSON, PayloadDoesNotFit
from app.rate_limit import RateLimits
from app.reloader import IndexReloader
from app.settings import Settings
from lookup_index import IndexReader, KeyBackend, KeyMaterial, LookupIndexError, load_pepper
from lookup_index.signing import load_public_key

if TYPE_CHECKING:
    from app.metrics import Metrics

logger = logging.getLogger("app.startup")


class State(TypedDict):
    service: CheckService
    limits: RateLimits


class StartupRefused(Exception):
    """The service cannot start; the message is one line naming the problem."""


class StartupMessage:
    """Shared between the lifespan and :class:`OneLineStartupErrors`."""

    text = ""


def refuse_weak_profile(settings: Settings, reader: IndexReader, warnings: list[str]) -> None:
    """Production guard: a ``test``-profile index costs an attacker nothing per guess."""
    profile = reader.header.profile.name
    if profile == "test" and not settings.allow_test_profile:
        raise StartupRefused(
            "the index was built with the 'test' Argon2 profile (for tests only); "
            "rebuild it with --profile standard, or set SELFCHECK_ALLOW_TEST_PROFILE=true"
        )
    if profile == "fast":
        warnings.append(
            "the index was built with the 'fast' Argon2 profile: guesses cost ~5x less "
            "than with 'standard'; fine for a demo, rebuild with --profile standard"
        )


def check_signature(settings: Settings, reader: IndexReader, warnings: list[str]) -> None:
    """Refuse a tampered or re-signed index; an unsigned one only when a signature is required."""
    if settings.index_public_key_file is None:
        warnings.append(
            "the index signature is not checked: set SELFCHECK_INDEX_PUBLIC_KEY_FILE "
            "and SELFCHECK_REQUIRE_SIGNED_INDEX=true"
        )
        return
    public_key = load_public_key(settings.resolved_secret(settings.index_public_key_file))
    if reader.signed or settings.require_signed_index:
        reader.verify_signature(public_key)
    else:
        warnings.append("the index is not signed; SELFCHECK_REQUIRE_SIGNED_INDEX=true refuses it")


def rate_limit_key(settings: Settings) -> bytes | None:
    """The separate rate-limit key, if one is configured (it survives pepper rotations)."""
    if settings.rate_limit_key_file is None:
        return None
    return load_pepper(settings.resolved_secret(settings.rate_limit_key_file))


def warn_about_software_token(key: KeyBackend, warnings: list[str]) -> None:
    if getattr(key, "software_token", False):
        warnings.append(
            "the key is in a software token (SoftHSM2): its files on this host protect the key "
            "no better than a key file; use a hardware HSM or a cloud KMS in production"
        )


def index_rows(indexes: IndexSet) -> list[dict[str, Any]]:
    """What the info metric and /readyz say about the loaded indexes: no path, no secret."""
    return [
        {
            "incident": reader.header.incident_id,
            "format_version": reader.header.format_version,
            "keys": reader.header.count,
            "params_id": reader.header.params_id,
            "built_at": datetime.fromisoformat(reader.header.created_at).timestamp(),
        }
        for reader in indexes.readers
    ]


def read_index_files(settings: Settings, warnings: list[str]) -> list[IndexReader]:
    """Open and verify every index file (checksum, signature, profile), or refuse in one line."""

    def vet(reader: IndexReader) -> None:
        check_signature(settings, reader, warnings)
        refuse_weak_profile(settings, reader, warnings)

    try:
        return open_readers(index_paths(settings.index_path), vet)
    except (LookupIndexError, IndexSetRefused) as exc:
        raise StartupRefused(str(exc)) from None


def match_or_refuse(readers: list[IndexReader], key: KeyMaterial) -> IndexSet:
    """The files as one set under ``key``, or StartupRefused (the readers then closed)."""
    try:
        return match_set(readers, key)
    except (LookupIndexError, IndexSetRefused) as exc:
        for reader in readers:
            reader.close()
        raise StartupRefused(str(exc)) from None


def open_delivery(
    settings: Settings, indexes: IndexSet, desk: AdmissionDesk
) -> PrivateDelivery | None:
    """Private or auto delivery: the outbox and its key (raises StartupRefused)."""
    if settings.delivery == "screen":
        return None
    if not any(reader.has_sealed_contacts for reader in indexes.readers):
        raise StartupRefused(
            f"SELFCHECK_DELIVERY={settings.delivery} needs an index with sealed contacts "
            "(lookup-index build --sender-public-key)"
        )
    url = settings.resolved_outbox_url()
    if url is None:  # refused by the settings validator; kept for the type checker
        raise StartupRefused("SELFCHECK_OUTBOX_URL is not set")
    try:
        key = settings.load_outbox_key()
        password = settings.outbox_password()
    except (LookupIndexError, ValueError) as exc:
        raise StartupRefused(str(exc)) from None
    client = redis_client(url, password, settings.rate_limit_timeout_ms / 1000)
    return PrivateDelivery(
        settings.delivery,
        EntrySealer(key, settings.outbox_stream),
        Outbox(client, settings.outbox_stream),
        lambda: desk.cost.under_attack,
    )


def open_service(
    settings: Settings,
    limits: RateLimits,
    renderer: PaddedJSON,
    *,
    warn: bool = True,
) -> CheckService:
    """Open and check the indexes, the key and the catalogues; raise StartupRefused.

    Warnings are logged only once every check passed (a refusal stays one line), and not
    at all with ``warn=False`` (the launcher's preflight: the lifespan will say them).
    """
    warnings: list[str] = []
    try:
        content = Content.load(settings.content_dir)
    except ContentRefused as exc:
        raise StartupRefused(str(exc)) from None
    if content.bundled_notice:
        warnings.append(
            "the privacy notice is the bundled default, naming no controller, DPO or legal "
            "basis: set SELFCHECK_CONTENT_DIR (docs/OPERATIONS.md, Texts)"
        )
    readers = read_index_files(settings, warnings)
    try:
        key = settings.open_key_backend()
    except LookupIndexError as exc:
        for reader in readers:
            reader.close()
        raise StartupRefused(str(exc)) from None
    try:
        indexes = match_or_refuse(readers, key)
    except StartupRefused:
        key.close()
        raise
    try:
        # Subkeys are derived once, here: a few token operations, then plain memory.
        limits.bind_pepper(rate_limit_key(settings) or key)
        queue = AdmissionQueue(
            settings.hash_concurrency,
            settings.admission_wait_ms / 1000,
            settings.max_in_flight,
        )
        desk = AdmissionDesk(settings, limits, key)
        delivery = open_delivery(settings, indexes, desk)
        service = CheckService(
            indexes,
            limits,
            renderer,
            AdviceCatalogue(content.advice),
            desk,
            queue,
            content=content,
            delivery=delivery,
        )
        for payload in service.largest_payloads():
            renderer.render(payload)
    except LookupIndexError as exc:
        indexes.close()
        key.close()
        raise StartupRefused(str(exc)) from None
    except PayloadDoesNotFit as exc:
        indexes.close()
        key.close()
        raise StartupRefused(f"SELFCHECK_RESPONSE_SIZE too small: {exc}") from None
    except StartupRefused:
        indexes.close()
        key.close()
        raise
    except SlowapiEnvironment as exc:
        indexes.close()
        key.close()
        raise StartupRefused(str(exc)) from None
    warn_about_software_token(key, warnings)
    for text in dict.fromkeys(warnings) if warn else ():
        logger.warning(text)
    service.start_counting_key_operations()
    return service


def make_lifespan(
    settings: Settings,
    limits: RateLimits,
    renderer: PaddedJSON,
    message: StartupMessage,
    metrics: Metrics | None = None,
) -> Callable[[object], AbstractAsyncContextManager[State]]:
    @asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[State]:
        try:
            service = open_service(settings, limits, renderer)
        except StartupRefused as exc:
            message.text = f"selfcheck cannot start: {exc}"
            raise
        service.outcomes = DailyOutcomes(limits.storage)
        if metrics is not None:
            service.metrics = metrics
            metrics.show_indexes(service.indexes.id, index_rows(service.indexes))
        if limits.per_process:
            logger.warning("rate limits use memory:// storage: they are per process, not shared")
        service.desk.start()
        key = service.hasher.key
        reloader = IndexReloader(
            settings,
            service,
            lambda: match_or_refuse(read_index_files(settings, []), key),
            index_rows,
            metrics,
        )
        reloader.start(asyncio.get_running_loop())
        logger.info("index loaded; ready")
        try:
            yield {"service": service, "limits": limits}
        finally:
            reloader.stop()
            service.desk.stop()
            await run_in_threadpool(service.outcomes.flush)
            usage = service.key_usage()
            # More token operations than hashed checks: something else used the key.
            logger.info(
                "key operations: %d for %d hashed checks and %d contact bindings",
                usage.key_operations,
                usage.hashed_checks,
                usage.contact_bindings,
            )
            if service.delivery is not None:
                service.delivery.close()
            service.indexes.close()
            service.hasher.key.close()
            forget_this_process()

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
