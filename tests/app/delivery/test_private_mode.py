"""SELFCHECK_DELIVERY=private|auto in the API: one answer for every valid query, one sealed
outbox entry each (Redis with ACL users: the API may only XADD), the uniform 503 when the
outbox fails, and auto following the attack signal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

import app.state as app_state
from app.admission.cost import CostControl
from app.check_service import CheckService
from app.delivery.outbox_entry import ENTRY_SIZE, EntrySealer, Kind
from lookup_index.keyed_hash import stretch
from lookup_index.normalise import canonical_identity
from lookup_index.pepper import load_pepper
from lookup_index.sealed_contact import contact_binding_key, open_contact
from lookup_index.sender_keys import load_sender_private_key
from tests.app.helpers import CHECK, GENEROUS_LIMITS, body_of
from tests.support.delivery import STREAM, AclRedis, ContactDataset

SUBMITTED_KEYS = {"status", "incident", "message", "hint", "lang", "checked_at", "padding"}


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[CheckService]:
    services: list[CheckService] = []
    original = app_state.open_service

    def recording(*args: Any, **kwargs: Any) -> CheckService:
        services.append(original(*args, **kwargs))
        return services[-1]

    monkeypatch.setattr(app_state, "open_service", recording)
    return services


def private_settings(
    contacts: ContactDataset, outbox_redis: AclRedis, **overrides: Any
) -> dict[str, Any]:
    return {
        **GENEROUS_LIMITS,
        "index_path": contacts.index,
        "key_file": contacts.key,
        "delivery": "private",
        "outbox_url": outbox_redis.url("selfcheck-api"),
        "outbox_password_file": outbox_redis.password_file("selfcheck-api"),
        "outbox_key_file": contacts.outbox_key,
        **overrides,
    }


def entries(outbox_redis: AclRedis) -> list[tuple[bytes, bytes]]:
    admin = outbox_redis.admin()
    try:
        return [(i, f[b"e"]) for i, f in admin.xrange(STREAM)]
    finally:
        admin.close()


@pytest.fixture
def empty_outbox(outbox_redis: AclRedis) -> AclRedis:
    admin = outbox_redis.admin()
    admin.delete(STREAM)
    admin.close()
    return outbox_redis


async def test_every_valid_query_gets_one_answer_and_writes_one_entry(
    app_factory: Callable[..., Any], contacts: ContactDataset, empty_outbox: AclRedis
) -> None:
    _, client = await app_factory(**private_settings(contacts, empty_outbox))
    probes = [
        contacts.with_email[0][0],
        contacts.without_contact[0],
        contacts.not_found[0],
    ]
    answers = []
    for number, probe in enumerate(probes, start=1):
        answer = await client.post(CHECK, json=body_of(probe, lang="en"))
        answers.append(answer)
        assert len(entries(empty_outbox)) == number  # exactly one more, whatever the outcome
    assert {a.status_code for a in answers} == {200}
    assert {len(a.content) for a in answers} == {8192}
    bodies = [a.json() for a in answers]
    assert {frozenset(b) for b in bodies} == {frozenset(SUBMITTED_KEYS)}
    for body in bodies:
        body.pop("padding")
        body.pop("checked_at")
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["status"] == "submitted"
    assert bodies[0]["message"].startswith("If these details match a record of the incident")
    assert [sorted(a.headers.keys()) for a in answers[1:]] == [sorted(answers[0].headers)] * 2
    # An invalid query keeps the constant 422 and writes nothing.
    refused = await client.post(CHECK, json={"nir": "not a nir"})
    assert refused.status_code == 422
    assert len(entries(empty_outbox)) == 3
    assert {len(e) for _, e in entries(empty_outbox)} == {ENTRY_SIZE}


async def test_entries_carry_the_outcome_sealed_for_the_sender_only(
    app_factory: Callable[..., Any], contacts: ContactDataset, empty_outbox: AclRedis
) -> None:
    _, client = await app_factory(**private_settings(contacts, empty_outbox))
    probe, email = contacts.with_email[1]
    for sent in (probe, contacts.without_contact[1], contacts.not_found[1]):
        assert (await client.post(CHECK, json=body_of(sent, lang="fr"))).status_code == 200
    sealer = EntrySealer(load_pepper(contacts.outbox_key), STREAM)
    hit, contactless, miss = (sealer.open(e) for _, e in entries(empty_outbox))
    assert [hit.kind, contactless.kind, miss.kind] == [Kind.DELIVER, Kind.DELIVER, Kind.NOTHING]
    assert hit.lang == "fr"
    sender = load_sender_private_key(contacts.sender_key)
    assert open_contact(hit.sealed_contact, sender, hit.binding).email == email
    assert open_contact(contactless.sealed_contact, sender, contactless.binding).empty
    # The binding is the identity's: computed from what was typed, never stored.
    canonical = canonical_identity(probe.nir, probe.birth_date, probe.last_name).canonical()
    from lookup_index.reader import IndexReader

    with IndexReader.open(contacts.index) as reader:
        stretched = stretch(canonical, reader.header.salt, reader.header.profile)
    assert hit.binding == contact_binding_key(load_pepper(contacts.key), stretched)


async def test_the_api_user_may_only_append(outbox_redis: AclRedis) -> None:
    import redis
    from redis.exceptions import NoPermissionError

    api = redis.Redis.from_url(
        outbox_redis.url("selfcheck-api"),
        password=outbox_redis.password_file("selfcheck-api").read_text(),
    )
    try:
        api.xadd(STREAM, {b"e": b"x"})
        for command in (
            lambda: api.xrange(STREAM),
            lambda: api.xlen(STREAM),
            lambda: api.delete(STREAM),
            lambda: api.set("selfcheck:outbox:sender:x", 1),
            lambda: api.xadd("elsewhere", {b"e": b"x"}),
        ):
            with pytest.raises(NoPermissionError):
                command()
    finally:
        api.close()
        admin = outbox_redis.admin()
        admin.delete(STREAM)
        admin.close()


async def test_a_failing_outbox_answers_the_uniform_503_for_every_query(
    app_factory: Callable[..., Any], contacts: ContactDataset, outbox_redis: AclRedis
) -> None:
    settings = private_settings(contacts, outbox_redis, outbox_url="redis://127.0.0.1:9/0")
    _, client = await app_factory(**settings)
    answers = [
        await client.post(CHECK, json=body_of(p))
        for p in (contacts.with_email[0][0], contacts.not_found[0])
    ]
    assert [a.status_code for a in answers] == [503, 503]
    assert answers[0].json()["error"] == answers[1].json()["error"] == "unavailable"
    assert len(answers[0].content) == len(answers[1].content) == 8192


async def test_auto_switches_to_private_while_the_attack_signal_is_raised(
    app_factory: Callable[..., Any],
    contacts: ContactDataset,
    empty_outbox: AclRedis,
    opened: list[CheckService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, client = await app_factory(**private_settings(contacts, empty_outbox, delivery="auto"))
    service = opened[-1]
    now, load = [0.0], [1.0]
    cost = CostControl(top=1, attack_after_s=60, load=lambda: load[0], clock=lambda: now[0])
    service.desk.cost = cost
    probe = contacts.with_email[2][0]

    async def status() -> str:
        answer = await client.post(CHECK, json=body_of(probe))
        assert answer.status_code == 200
        return str(answer.json()["status"])

    assert await status() == "affected"
    assert entries(empty_outbox) == []
    cost.update()  # the top step, held from now
    now[0] = 61.0
    with caplog.at_level(logging.WARNING, logger="app.delivery"):
        cost.update()
        assert cost.under_attack
        assert await status() == "submitted"
        assert len(entries(empty_outbox)) == 1
        load[0], now[0] = 0.0, 200.0
        cost.update()  # calm long enough: the step falls, the signal clears
        assert not cost.under_attack
        assert await status() == "affected"
    assert len(entries(empty_outbox)) == 1
    assert service.delivery is not None
    assert service.delivery.switches == 2
    assert "delivery switched to private (attack signal raised)" in caplog.text
    assert "delivery switched to screen (attack signal cleared)" in caplog.text
