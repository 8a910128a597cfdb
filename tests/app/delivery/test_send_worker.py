"""End to end on real components: the API in private mode writes the outbox (Redis with ACL
users and AOF), ``selfcheck send-worker`` reads it and sends to aiosmtpd (its own process).

One Redis, one SMTP server and one contact dataset are shared by the module; each test
starts from an empty outbox, empty sender state and an empty mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.delivery.outbox_entry import EntrySealer, Kind, OutboxEntry
from app.delivery.send_worker import SendWorker, open_worker
from app.settings import Settings
from loadtests.harness import lifted_limits_env
from lookup_index.sealed_contact import BINDING_KEY_SIZE, SEALED_CONTACT_SIZE
from tests.app.delivery.test_private_mode import entries, private_settings
from tests.app.helpers import CHECK, body_of
from tests.support.delivery import (
    STREAM,
    AclRedis,
    ContactDataset,
    SmtpSink,
    send_worker,
    wait_until,
    worker_env,
)
from tests.support.servers import api_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def clean(outbox_redis: AclRedis, smtp: SmtpSink) -> Iterator[None]:
    def wipe() -> None:
        admin = outbox_redis.admin()
        keys = admin.keys(f"{STREAM}*")
        if keys:
            admin.delete(*keys)
        admin.close()
        smtp.clear()
        smtp.refuse(False)

    wipe()
    yield
    wipe()


def worker_settings(
    contacts: ContactDataset, outbox_redis: AclRedis, smtp: SmtpSink, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "outbox_url": outbox_redis.url("selfcheck-sender"),
        "outbox_password_file": outbox_redis.password_file("selfcheck-sender"),
        "outbox_key_file": contacts.outbox_key,
        "sender_key_file": contacts.sender_key,
        "smtp_url": smtp.url,
        "mail_from": "selfcheck@example.org",
        "public_origin": "https://check.example.org",
        "send_retry_base_s": 0.2,
        "send_rate_per_s": 500,
    }
    values.update(overrides)
    return Settings(**values)


async def drain(worker: SendWorker, until: Callable[[], bool]) -> None:
    await worker.ensure_group()
    deadline = time.monotonic() + 20.0
    while not until():
        assert time.monotonic() < deadline, f"worker did not finish: {worker.stats}"
        await worker.run_once()


async def close(worker: SendWorker) -> None:
    await worker.email.close()
    await worker.client.aclose()


def pending(outbox_redis: AclRedis) -> int:
    admin = outbox_redis.admin()
    try:
        return int(admin.xlen(STREAM))
    finally:
        admin.close()


def recipients(smtp: SmtpSink) -> list[str]:
    return sorted(str(to) for m in smtp.messages() for to in m["to"])  # type: ignore[attr-defined]


async def check_all(client: httpx.AsyncClient, probes: list[Any], lang: str = "fr") -> None:
    for probe in probes:
        answer = await client.post(CHECK, json=body_of(probe, lang=lang))
        assert answer.status_code == 200
        assert answer.json()["status"] == "submitted"


async def test_one_message_at_the_right_address_and_none_for_the_others(
    app_factory: Callable[..., Any],
    contacts: ContactDataset,
    outbox_redis: AclRedis,
    smtp: SmtpSink,
    clean: None,
) -> None:
    _, client = await app_factory(**private_settings(contacts, outbox_redis))
    probe, address = contacts.with_email[0]
    others = [contacts.without_contact[0], contacts.not_found[0], contacts.not_found[1]]
    await check_all(client, [probe, *others], lang="en")
    assert len(entries(outbox_redis)) == 4
    worker = open_worker(worker_settings(contacts, outbox_redis, smtp))
    try:
        await drain(worker, lambda: pending(outbox_redis) == 0)
    finally:
        await close(worker)
    assert recipients(smtp) == [address]
    assert (worker.stats.sent, worker.stats.nothing_to_send) == (1, 3)
    message = email.message_from_string(
        str(smtp.messages()[0]["data"]), policy=email.policy.default
    )
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Someone — most likely you — checked these details on" in text
    assert "If it was not you, you need do nothing." in text
    assert "We will never call you, and never ask for bank details, passwords or codes." in text
    # No tracking, no link but the public origin, nothing a caller could quote back.
    links = {link.rstrip(".,") for link in re.findall(r"https?://[^\s\"<]+", text + html)}
    assert links == {"https://check.example.org"}
    assert "<img" not in html
    assert probe.nir not in message.as_string()
    assert probe.last_name not in message.as_string().upper().replace(address.upper(), "")


async def test_a_forged_entry_is_refused(
    contacts: ContactDataset, outbox_redis: AclRedis, smtp: SmtpSink, clean: None
) -> None:
    """Redis access alone cannot make the sender mail anyone: without the outbox key an
    entry does not authenticate; a genuine entry replayed into another stream neither."""
    admin = outbox_redis.admin()
    genuine_elsewhere = EntrySealer(contacts.outbox_key.read_bytes(), "elsewhere").seal(
        OutboxEntry(
            Kind.DELIVER, "fr", 1, int(time.time()), bytes(BINDING_KEY_SIZE),
            bytes(SEALED_CONTACT_SIZE),
        )
    )  # fmt: skip
    wrong_key = EntrySealer(bytes(32), STREAM).seal(
        OutboxEntry(
            Kind.DELIVER, "fr", 1, int(time.time()), bytes(BINDING_KEY_SIZE),
            bytes(SEALED_CONTACT_SIZE),
        )
    )  # fmt: skip
    for forged in (b"\0" * 256, b"junk", genuine_elsewhere, wrong_key):
        admin.xadd(STREAM, {b"e": forged})
    # A genuine entry older than the retention period (a replayed copy) is dropped too.
    too_old = int(time.time()) - 31 * 86_400
    stale = EntrySealer(contacts.outbox_key.read_bytes(), STREAM).seal(
        OutboxEntry(
            Kind.DELIVER, "fr", 1, too_old, bytes(BINDING_KEY_SIZE), bytes(SEALED_CONTACT_SIZE)
        )
    )
    admin.xadd(STREAM, {b"e": stale})
    admin.close()
    worker = open_worker(worker_settings(contacts, outbox_redis, smtp))
    try:
        await drain(worker, lambda: pending(outbox_redis) == 0)
    finally:
        await close(worker)
    assert worker.stats.forged == 4
    assert worker.stats.expired == 1
    assert smtp.messages() == []


async def test_smtp_refusing_then_accepting_delivers_after_a_retry(
    app_factory: Callable[..., Any],
    contacts: ContactDataset,
    outbox_redis: AclRedis,
    smtp: SmtpSink,
    clean: None,
) -> None:
    _, client = await app_factory(**private_settings(contacts, outbox_redis))
    probe, address = contacts.with_email[1]
    await check_all(client, [probe])
    smtp.refuse(True)
    worker = open_worker(worker_settings(contacts, outbox_redis, smtp))
    try:
        await drain(worker, lambda: worker.stats.retried >= 2)
        assert smtp.messages() == []
        assert pending(outbox_redis) == 1  # still in the outbox, unacknowledged
        smtp.refuse(False)
        await drain(worker, lambda: pending(outbox_redis) == 0)
    finally:
        await close(worker)
    assert recipients(smtp) == [address]
    assert worker.stats.dead_letters == 0


async def test_dead_letters_after_the_last_attempt(
    app_factory: Callable[..., Any],
    contacts: ContactDataset,
    outbox_redis: AclRedis,
    smtp: SmtpSink,
    clean: None,
) -> None:
    _, client = await app_factory(**private_settings(contacts, outbox_redis))
    await check_all(client, [contacts.with_email[2][0]])
    smtp.refuse(True)
    settings = worker_settings(contacts, outbox_redis, smtp, send_max_attempts=2)
    worker = open_worker(settings)
    try:
        await drain(worker, lambda: pending(outbox_redis) == 0)
    finally:
        await close(worker)
    assert worker.stats.dead_letters == 1
    admin = outbox_redis.admin()
    dead = admin.xrange(f"{STREAM}:dead")
    admin.close()
    assert len(dead) == 1
    assert len(dead[0][1][b"e"]) == 256  # still sealed: a dead letter holds no contact


async def test_a_killed_worker_restarts_and_delivers_each_message_once(
    app_factory: Callable[..., Any],
    contacts: ContactDataset,
    outbox_redis: AclRedis,
    smtp: SmtpSink,
    clean: None,
    tmp_path: Path,
) -> None:
    _, client = await app_factory(**private_settings(contacts, outbox_redis))
    batch = contacts.with_email[3:23]
    await check_all(client, [p for p, _ in batch])
    env = worker_env(contacts, outbox_redis, smtp, SELFCHECK_SEND_RATE_PER_S="15")
    log = tmp_path / "worker.log"
    with send_worker(env, log) as process:
        await asyncio.to_thread(wait_until, lambda: len(smtp.messages()) >= 4, 30, "messages")
        os.kill(process.pid, signal.SIGKILL)  # mid-batch, no chance to finish anything
        process.wait(timeout=10)
    delivered_before = len(smtp.messages())
    assert delivered_before < len(batch)
    with send_worker(env, log):
        await asyncio.to_thread(
            wait_until, lambda: pending(outbox_redis) == 0, 60, "an empty outbox"
        )
    assert recipients(smtp) == sorted(address for _, address in batch)  # each exactly once


def test_the_per_contact_limit_holds_across_two_api_processes(
    contacts: ContactDataset,
    outbox_redis: AclRedis,
    smtp: SmtpSink,
    clean: None,
    tmp_path: Path,
) -> None:
    env = {
        **lifted_limits_env(),
        "SELFCHECK_INDEX_PATH": str(contacts.index),
        "SELFCHECK_KEY_FILE": str(contacts.key),
        "SELFCHECK_ALLOW_TEST_PROFILE": "true",
        "SELFCHECK_RESPONSE_FLOOR_MS": "0",
        "SELFCHECK_POW": "off",  # no challenge pool filling in the background
        "SELFCHECK_HASH_CONCURRENCY": "1",
        "SELFCHECK_DELIVERY": "private",
        "SELFCHECK_OUTBOX_URL": outbox_redis.url("selfcheck-api"),
        "SELFCHECK_OUTBOX_PASSWORD_FILE": str(outbox_redis.password_file("selfcheck-api")),
        "SELFCHECK_OUTBOX_KEY_FILE": str(contacts.outbox_key),
    }
    probe, address = contacts.with_email[25]
    with contextlib.ExitStack() as stack:
        # Started side by side: each process takes seconds to import and open the index.
        starting = [api_server(env, tmp_path / f"api-{n}.log") for n in (1, 2)]
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(stack.enter_context, starting)
        for server in (first, second, first):
            answer = httpx.post(server.url + CHECK, json=body_of(probe), timeout=10)
            assert answer.json()["status"] == "submitted"
    assert len(entries(outbox_redis)) == 3
    worker = open_worker(worker_settings(contacts, outbox_redis, smtp))

    async def run() -> None:
        try:
            await drain(worker, lambda: pending(outbox_redis) == 0)
        finally:
            await close(worker)

    asyncio.run(run())
    assert recipients(smtp) == [address]
    assert worker.stats.contact_limited == 2


async def test_restarting_redis_with_aof_loses_no_entry(
    app_factory: Callable[..., Any],
    contacts: ContactDataset,
    outbox_redis: AclRedis,
    clean: None,
) -> None:
    _, client = await app_factory(**private_settings(contacts, outbox_redis))
    probes = [p for p, _ in contacts.with_email[30:35]] + contacts.not_found[10:15]
    await check_all(client, probes)
    before = entries(outbox_redis)
    assert len(before) == len(probes)
    outbox_redis.kill()  # SIGKILL: only what the append-only file holds comes back
    outbox_redis.start()
    assert entries(outbox_redis) == before


def test_the_sender_user_may_only_read_acknowledge_and_trim(outbox_redis: AclRedis) -> None:
    import redis
    from redis.exceptions import NoPermissionError

    sender = redis.Redis.from_url(
        outbox_redis.url("selfcheck-sender"),
        password=outbox_redis.password_file("selfcheck-sender").read_text(),
    )
    try:
        sender.xtrim(STREAM, minid=0)
        for command in (
            lambda: sender.xadd(STREAM, {b"e": b"x"}),  # cannot write entries it would send
            lambda: sender.delete(STREAM),
            lambda: sender.get("selfcheck:v1:some-limit"),
            lambda: sender.flushall(),
            lambda: sender.config_get("*"),
        ):
            with pytest.raises(NoPermissionError):
                command()
    finally:
        sender.close()
