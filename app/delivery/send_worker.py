"""``selfcheck send-worker``: reads the outbox, opens sealed contacts, sends by SMTP.

Per entry: authenticate it with the outbox key (Redis never holds that key: a forged
entry is refused), skip it if this entry id was already sent, open the sealed contact
with the sender's private key and the binding key it carries, hold the contact's
7-day slot, wait for the global sending rate (delays, never drops), send, and only
once the server accepted: mark the id sent, acknowledge and delete the entry. A failed
send stays pending and is retried with doubling delays; after ``send_max_attempts``
it becomes a dead letter (its own stream, trimmed after the retention period).

Delivery is at least once: a worker killed between the server's acceptance and the
"sent" mark (a few microseconds) sends that one message again on restart. Every
state key is under ``<stream>:sender:``, every contact key an HMAC under a key derived
from the sender's private key: Redis holds no contact and cannot name one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from redis.exceptions import RedisError, ResponseError

from app.delivery.channels import DeliveryFailed, EmailChannel, SmsChannel, SmtpConfig
from app.delivery.messages import MessageContext, email_message, sms_text
from app.delivery.outbox import ENTRY_FIELD
from app.delivery.outbox_entry import EntrySealer, ForgedEntry, Kind, OutboxEntry
from app.settings import Settings
from lookup_index.sealed_contact import Contact, ContactSealError, open_contact
from lookup_index.sender_keys import load_sender_private_key

logger = logging.getLogger("app.delivery.worker")

GROUP = "senders"
DAY_S = 86_400
#: Longest delay between two attempts at one entry.
MAX_RETRY_DELAY_S = 3600.0
#: Entries idle this long in another consumer's pending list are taken over (a dead worker).
CLAIM_IDLE_MS = 300_000
TRIM_EVERY_S = 60.0
_CONTACT_LABEL = b"patient-breach-selfcheck/contact-limit/v1"


class SendingRate:
    """A global pace: each send waits for its turn, none is ever dropped."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._next = 0.0

    async def wait(self) -> None:
        now = self._clock()
        turn = max(now, self._next)
        self._next = turn + self._interval
        if turn > now:
            await asyncio.sleep(turn - now)


@dataclass
class WorkerStats:
    sent: int = 0
    nothing_to_send: int = 0
    forged: int = 0
    duplicates: int = 0
    contact_limited: int = 0
    retried: int = 0
    dead_letters: int = 0
    no_channel: int = 0
    expired: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class SendWorker:
    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        sealer: EntrySealer,
        sender_key: X25519PrivateKey,
        email: EmailChannel,
        sms: SmsChannel | None = None,
        *,
        batch: int = 32,
        block_ms: int = 500,
    ) -> None:
        self.settings = settings
        self.client = client
        self.sealer = sealer
        self._sender_key = sender_key
        self.email = email
        self.sms = sms
        self.stream = settings.outbox_stream
        self.dead_stream = f"{self.stream}:dead"
        self._prefix = f"{self.stream}:sender:"
        self.name = settings.send_worker_name
        self.batch = batch
        self.block_ms = block_ms
        self.rate = SendingRate(settings.send_rate_per_s)
        self.stats = WorkerStats()
        raw = sender_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        self._contact_key = hmac.new(raw, _CONTACT_LABEL, hashlib.sha256).digest()
        self._retry_at: dict[bytes, float] = {}
        self._attempts: dict[bytes, int] = {}
        self._last_trim = float("-inf")
        self._stopping = asyncio.Event()

    def __repr__(self) -> str:
        return f"SendWorker(name={self.name!r}, keys=<hidden>)"

    # --- the loop -------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        logger.info("send-worker %s reading %s", self.name, self.stream)
        ready = False
        while not self._stopping.is_set():
            try:
                if not ready:
                    await self.ensure_group()
                    ready = True
                await self.run_once()
            except RedisError as exc:
                logger.warning("outbox store unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def run_once(self) -> int:
        """One pass: due retries and taken-over entries, then new entries. Entries handled."""
        await self._trim_if_due()
        handled = 0
        for entry_id, fields in await self._read("0"):
            if self._retry_at.get(entry_id, 0.0) <= time.monotonic():
                await self.handle(entry_id, fields)
                handled += 1
        for entry_id, fields in await self._claim():
            await self.handle(entry_id, fields)
            handled += 1
        # Retries waiting: look again soon; otherwise block until new entries arrive.
        block = min(self.block_ms, 100) if self._retry_at else self.block_ms
        for entry_id, fields in await self._read(">", block):
            await self.handle(entry_id, fields)
            handled += 1
        return handled

    async def _read(self, start: str, block: int | None = None) -> list[tuple[bytes, Any]]:
        answer: Any = await self.client.xreadgroup(
            GROUP, self.name, {self.stream: start}, count=self.batch, block=block
        )
        return [(entry_id, fields) for _, entries in answer or [] for entry_id, fields in entries]

    async def _claim(self) -> list[tuple[bytes, Any]]:
        answer: Any = await self.client.xautoclaim(
            self.stream, GROUP, self.name, CLAIM_IDLE_MS, start_id="0", count=self.batch
        )
        return [(entry_id, fields) for entry_id, fields in answer[1] if entry_id]

    # --- one entry ------------------------------------------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    async def _done(self, entry_id: bytes) -> None:
        """Acknowledge and delete: a delivered (or refused) entry leaves the outbox."""
        await self.client.xack(self.stream, GROUP, entry_id)
        await self.client.xdel(self.stream, entry_id)
        self._retry_at.pop(entry_id, None)
        self._attempts.pop(entry_id, None)

    async def handle(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> None:
        if not fields:
            # Pending but deleted meanwhile (trimmed by retention): nothing left to do.
            await self._done(entry_id)
            return
        data = fields.get(ENTRY_FIELD, b"")
        try:
            entry = self.sealer.open(data)
        except ForgedEntry:
            # Redis access alone cannot make us mail anyone: no outbox key, no entry.
            self.stats.forged += 1
            logger.warning("outbox entry refused: it does not authenticate")
            await self._done(entry_id)
            return
        ident = entry_id.decode()
        if time.time() - entry.checked_at > self.settings.outbox_retention_days * DAY_S:
            # Older than the retention period: a replayed copy, or a backlog past its use.
            self.stats.expired += 1
            await self._done(entry_id)
            return
        if await self.client.exists(self._key("sent", ident)):
            self.stats.duplicates += 1
            await self._done(entry_id)
            return
        contact = self._contact(entry)
        if contact is None:
            self.stats.nothing_to_send += 1
            await self._done(entry_id)
            return
        await self._deliver(entry_id, entry, contact, data)

    def _contact(self, entry: OutboxEntry) -> Contact | None:
        """The contact to write to, or None: nothing to send (a miss, a dummy)."""
        if entry.kind is not Kind.DELIVER:
            return None
        try:
            contact = open_contact(entry.sealed_contact, self._sender_key, entry.binding)
        except ContactSealError:
            logger.warning("sealed contact does not open (wrong sender key or damaged)")
            return None
        if contact.email:
            return contact
        if contact.mobile and self.sms is not None:
            return contact
        if contact.mobile:
            # The SMS slot is empty: a mobile-only contact cannot be written to yet.
            self.stats.no_channel += 1
        return None

    async def _hold_contact(self, ident: str, address: str) -> bool:
        """The contact's 7-day slot: ours if free or already held by this very entry."""
        digest = hmac.new(self._contact_key, address.encode(), hashlib.sha256).hexdigest()[:32]
        key = self._key("contact", digest)
        ttl = self.settings.send_contact_interval_days * DAY_S
        if await self.client.set(key, ident, nx=True, ex=ttl):
            return True
        holder: Any = await self.client.get(key)
        return holder is not None and bytes(holder).decode() == ident

    async def _release_contact(self, ident: str, address: str) -> None:
        digest = hmac.new(self._contact_key, address.encode(), hashlib.sha256).hexdigest()[:32]
        key = self._key("contact", digest)
        holder: Any = await self.client.get(key)
        if holder is not None and bytes(holder).decode() == ident:
            await self.client.delete(key)

    async def _deliver(
        self, entry_id: bytes, entry: OutboxEntry, contact: Contact, data: bytes
    ) -> None:
        ident = entry_id.decode()
        address = contact.email or contact.mobile
        if not await self._hold_contact(ident, address):
            self.stats.contact_limited += 1
            await self._done(entry_id)
            return
        context = MessageContext(
            entry.lang, entry.checked_at, entry.categories, self.settings.public_origin
        )
        await self.rate.wait()
        try:
            if contact.email:
                message = email_message(context, self.settings.mail_from, contact.email, ident)
                await self.email.send(message)
            elif self.sms is not None:
                await self.sms.send_sms(contact.mobile, sms_text(context))
        except DeliveryFailed as exc:
            await self._failed(entry_id, exc, address, data)
            return
        # Accepted by the server: mark, then acknowledge (a crash in between resends once).
        retention = self.settings.outbox_retention_days * DAY_S
        await self.client.set(self._key("sent", ident), b"1", ex=retention)
        self.stats.sent += 1
        await self._done(entry_id)

    async def _failed(
        self, entry_id: bytes, exc: DeliveryFailed, address: str, data: bytes
    ) -> None:
        attempts = self._attempts.get(entry_id, 0) + 1
        self._attempts[entry_id] = attempts
        if exc.permanent or attempts >= self.settings.send_max_attempts:
            await self.client.xadd(
                self.dead_stream,
                {ENTRY_FIELD: data, b"reason": str(exc).encode(), b"attempts": str(attempts)},
            )
            self.stats.dead_letters += 1
            logger.warning("outbox entry dead-lettered after %d attempts (%s)", attempts, exc)
            # A later check may write to this contact: the slot was never used.
            await self._release_contact(entry_id.decode(), address)
            await self._done(entry_id)
            return
        delay = min(self.settings.send_retry_base_s * 2 ** (attempts - 1), MAX_RETRY_DELAY_S)
        self._retry_at[entry_id] = time.monotonic() + delay
        self.stats.retried += 1
        logger.info("delivery failed (%s); retry %d in %.0f s", exc, attempts, delay)

    async def _trim_if_due(self) -> None:
        """Retention: dead letters (and entries never delivered) older than the period go."""
        now = time.time()
        if now - self._last_trim < TRIM_EVERY_S:
            return
        self._last_trim = now
        oldest = int((now - self.settings.outbox_retention_days * DAY_S) * 1000)
        for stream in (self.stream, self.dead_stream):
            await self.client.xtrim(stream, minid=oldest, approximate=False)


def open_worker(settings: Settings) -> SendWorker:
    """The worker as configured (raises ValueError or LookupIndexError with one line)."""
    url = settings.resolved_outbox_url()
    if url is None:
        raise ValueError("the send-worker needs SELFCHECK_OUTBOX_URL")
    if settings.sender_key_file is None:
        raise ValueError("the send-worker needs SELFCHECK_SENDER_KEY_FILE")
    sender_key = load_sender_private_key(settings.resolved_secret(settings.sender_key_file))
    sealer = EntrySealer(settings.load_outbox_key(), settings.outbox_stream)
    password = settings.outbox_password()
    options: dict[str, Any] = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0}
    if password is not None:
        options["password"] = password
    client = aioredis.Redis.from_url(url, **options)
    username, smtp_password = settings.smtp_credentials()
    email = EmailChannel(SmtpConfig.from_url(settings.smtp_url, username, smtp_password))
    return SendWorker(settings, client, sealer, sender_key, email)


async def serve_worker(worker: SendWorker) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await worker.email.close()
        await worker.client.aclose()
        logger.info("send-worker stopped: %s", worker.stats)
