"""The rate-limit policy, in process, on both storages (memory and a real redis-server).

Distinct clients are distinct ASGI peer addresses; X-Forwarded-For is used only
where a trusted proxy is the subject.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.rate_limit import RateLimits
from app.settings import Settings
from lookup_index import KeyedHasher
from lookup_index.pepper import load_pepper
from tests.support.dataset import Dataset
from tests.support.pow import presolved
from tests.support.rate_limits import (
    LIFTED,
    check_body,
    flush,
    in_process,
    keyspace,
    valid_probes,
    with_order_number,
)
from tests.support.servers import RedisServer

STORAGES = ["memory", "redis"]
DEFAULT_NETWORK_LIMITS = Settings.model_fields["limits_per_network"].default


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test runs once per storage, like limits' own ALL_STORAGES."""
    if request.param == "memory":
        yield "memory://"
        return
    server: RedisServer = request.getfixturevalue("redis")
    flush(server.url)
    yield server.url
    flush(server.url)


@pytest.fixture
def limited(make_settings: Callable[..., Settings], storage: str) -> Callable[..., Settings]:
    """Settings on the test's storage, every limit lifted except those the test sets."""

    def make(**overrides: Any) -> Settings:
        return make_settings(rate_limit_storage=storage, **{**LIFTED, **overrides})

    return make


@pytest.fixture
def bodies(dataset: Dataset) -> list[dict[str, str]]:
    return [check_body(probe) for probe in valid_probes(dataset.probes)]


async def test_one_network_gets_exactly_its_limit(
    limited: Callable[..., Settings], bodies: list[dict[str, str]]
) -> None:
    async with in_process(limited(limits_per_network=DEFAULT_NETWORK_LIMITS)) as app:
        first = await app.statuses(("127.0.0.9", body) for body in bodies[:6])
        other = await app.statuses([("127.0.0.10", bodies[6])])
    assert first == [200] * 5 + [429]
    assert other == [200]


async def test_addresses_rotating_inside_one_ipv6_64_share_its_limit(
    limited: Callable[..., Settings], bodies: list[dict[str, str]]
) -> None:
    rotating = ["2001:db8:1:1::1", "2001:db8:1:1::2", "2001:db8:1:1:ffff::9", "2001:db8:1:1::77"]
    async with in_process(limited(limits_per_network="3/minute")) as app:
        same_64 = await app.statuses(zip(rotating, bodies, strict=False))
        other_64 = await app.statuses(
            zip(["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3"], bodies[4:], strict=False)
        )
    assert same_64 == [200, 200, 200, 429]
    assert other_64 == [200, 200, 200]


async def test_the_ipv6_48_tier_holds_across_64s(
    limited: Callable[..., Settings], bodies: list[dict[str, str]]
) -> None:
    settings = limited(limits_per_network="3/minute", limits_per_ipv6_48="7/minute")
    plan = (
        ["2001:db8:7:a::1"] * 4  # its /64 limit: 3, then 429 (not counted on the /48)
        + ["2001:db8:7:b::1"] * 3  # 6 on the /48
        + ["2001:db8:7:c::1"] * 2  # 7th admitted, 8th refused by the /48 tier
        + ["2001:db8:8:a::1"]  # another /48
    )
    async with in_process(settings) as app:
        statuses = await app.statuses(zip(plan, bodies, strict=False))
    assert statuses == [200, 200, 200, 429, 200, 200, 200, 200, 429, 200]


async def test_ipv4_mapped_ipv6_is_the_same_client_as_ipv4(
    limited: Callable[..., Settings], bodies: list[dict[str, str]]
) -> None:
    plan = ["::ffff:198.51.100.7", "198.51.100.7", "::ffff:198.51.100.7"]
    async with in_process(limited(limits_per_network="2/minute")) as app:
        statuses = await app.statuses(zip(plan, bodies, strict=False))
    assert statuses == [200, 200, 429]


async def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    limited: Callable[..., Settings], bodies: list[dict[str, str]]
) -> None:
    settings = limited(limits_per_network="3/minute", trusted_proxies="10.0.0.0/8")
    async with in_process(settings) as app:
        statuses = [
            (
                await app.check("203.0.113.5", body, headers={"x-forwarded-for": f"198.51.100.{i}"})
            ).status_code
            for i, body in enumerate(bodies[:5])
        ]
    assert statuses == [200, 200, 200, 429, 429]


async def test_a_trusted_proxy_passes_on_the_right_most_untrusted_hop(
    limited: Callable[..., Settings], bodies: list[dict[str, str]]
) -> None:
    settings = limited(limits_per_network="3/minute", trusted_proxies="127.0.0.1/32")
    proxy = "127.0.0.1"

    async def through_proxy(forwarded: str, body: dict[str, str]) -> int:
        answer = await app.check(proxy, body, headers={"x-forwarded-for": forwarded})
        return answer.status_code

    async with in_process(settings) as app:
        # The client forges the left part; the proxy appends the address it saw.
        forged = [
            await through_proxy(f"198.51.100.{i}, 203.0.113.9", b) for i, b in enumerate(bodies[:4])
        ]
        another_client = await through_proxy("203.0.113.10", bodies[4])
        ipv6 = [
            await through_proxy(f"2001:db8:5:5::{i + 1}", body)
            for i, body in enumerate(bodies[5:9])
        ]
    assert forged == [200, 200, 200, 429]
    assert another_client == 200  # the proxy's own address is not the bucket
    assert ipv6 == [200, 200, 200, 429]


#: Each admission class has identity buckets of its own: (setting, proof of work or not).
CLASSES = {"unproven": "limits_per_identity_unproven", "proven": "limits_per_identity"}


def in_class(admission: str, body: dict[str, str], dataset: Dataset) -> dict[str, str]:
    """The body as sent by a client of this class (a pre-solved payload for proven)."""
    if admission == "unproven":
        return body
    return {**body, "altcha": presolved(load_pepper(dataset.key))}


@pytest.mark.parametrize("admission", CLASSES)
async def test_one_nir_from_many_networks_gets_exactly_the_identity_limit(
    limited: Callable[..., Settings], dataset: Dataset, admission: str
) -> None:
    target, *others = valid_probes(dataset.probes)
    names = ["Martin", "Bernard", "Durand", "Petit", "Leroy", "Moreau"]
    attempts = [
        (f"127.0.2.{i}", in_class(admission, check_body(replace(target, last_name=name)), dataset))
        for i, name in enumerate(names, start=1)
    ]
    async with in_process(limited(**{CLASSES[admission]: "3/day"})) as app:
        statuses = await app.statuses(attempts)
        unrelated = await app.statuses([("127.0.2.99", check_body(others[0]))])
    assert statuses == [200, 200, 200, 429, 429, 429]
    assert unrelated == [200]


@pytest.mark.parametrize("admission", CLASSES)
async def test_one_name_and_birth_date_from_many_networks_gets_exactly_the_identity_limit(
    limited: Callable[..., Settings], dataset: Dataset, admission: str
) -> None:
    target = valid_probes(dataset.probes)[1]
    attempts = [
        (
            f"127.0.3.{order}",
            in_class(admission, check_body(with_order_number(target, order)), dataset),
        )
        for order in range(1, 7)
    ]
    assert len({body["nir"] for _, body in attempts}) == 6
    async with in_process(limited(**{CLASSES[admission]: "3/day"})) as app:
        statuses = await app.statuses(attempts)
    assert statuses == [200, 200, 200, 429, 429, 429]


async def test_the_global_ceiling_holds_under_a_burst(
    limited: Callable[..., Settings], bodies: list[dict[str, str]]
) -> None:
    burst = [(f"127.0.4.{i}", bodies[i]) for i in range(1, 31)]
    async with in_process(limited(global_limit="10/minute")) as app:
        statuses = await app.burst(burst)
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 20, sorted(statuses)[-12:]


async def test_malformed_and_oversize_attempts_count_in_their_own_bucket(
    limited: Callable[..., Settings], bodies: list[dict[str, str]], dataset: Dataset
) -> None:
    invalid = next(p for p in dataset.probes if p.expected == "invalid")
    address = "127.0.0.30"
    settings = limited(limits_junk="3/minute", limits_per_network="1/minute")
    async with in_process(settings) as app:
        statuses = [
            (await app.check(address, content=b"nir=1", headers={"content-type": "text/plain"})),
            (
                await app.check(
                    address, content=b"{not json", headers={"content-type": "application/json"}
                )
            ),
            (await app.check(address, check_body(invalid))),
            (await app.check(address, {"nir": "1" * 9000})),
            (await app.check(address, bodies[0])),
            (await app.check(address, {"nir": "1" * 9000})),
        ]
    # The fourth refused body is over the junk limit; the check after it still has the
    # whole network budget, since junk never spends it.
    assert [answer.status_code for answer in statuses] == [415, 422, 422, 429, 200, 429]


async def test_junk_never_spends_the_global_ceiling(
    limited: Callable[..., Settings], bodies: list[dict[str, str]]
) -> None:
    junk = [(f"127.0.8.{i}", {"nir": "1"}) for i in range(1, 21)]
    async with in_process(limited(global_limit="2/minute", limits_junk="5/minute")) as app:
        refused = await app.burst(junk)
        checks = await app.statuses([("127.0.8.99", bodies[0]), ("127.0.8.98", bodies[1])])
    assert refused == [422] * 20
    assert checks == [200, 200]


async def test_no_argon2_work_happens_past_a_limit(
    limited: Callable[..., Settings],
    bodies: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hashed: list[bytes] = []
    original = KeyedHasher.digest

    def counting(self: KeyedHasher, canonical: bytes) -> bytes:
        hashed.append(canonical)
        return original(self, canonical)

    monkeypatch.setattr(KeyedHasher, "digest", counting)
    settings = limited(limits_per_network="2/minute", limits_per_identity_unproven="2/day")
    async with in_process(settings) as app:
        by_network = await app.statuses(("127.0.0.40", body) for body in bodies[:5])
        network_hashes = len(hashed)
        same_identity = [(f"127.0.5.{i}", bodies[10]) for i in range(5)]
        by_identity = await app.statuses(same_identity)
    assert by_network == [200, 200, 429, 429, 429]
    assert network_hashes == 2
    assert by_identity == [200, 200, 429, 429, 429]
    assert len(hashed) == 4


def envelope(answer: httpx.Response) -> tuple[int, tuple[tuple[bytes, bytes], ...], int]:
    headers = tuple((k.lower(), v) for k, v in answer.headers.raw if k.lower() != b"date")
    return answer.status_code, headers, len(answer.content)


def payload(answer: httpx.Response) -> dict[str, Any]:
    data: dict[str, Any] = answer.json()
    data.pop("padding")
    return data


async def test_every_429_is_the_same_and_reveals_no_limit(
    limited: Callable[..., Settings], dataset: Dataset
) -> None:
    probes = valid_probes(dataset.probes)
    body = [check_body(p) for p in probes]
    refused: dict[str, httpx.Response] = {}
    one_each = limited(
        limits_per_network="1/minute",
        limits_per_ipv6_48="1/hour",
        limits_per_identity_unproven="1/day",
        limits_junk="1/minute",
    )
    async with in_process(one_each) as app:
        await app.check("127.0.6.1", body[0])
        refused["network"] = await app.check("127.0.6.1", body[1])
        await app.check("2001:db8:6:1::1", body[2])
        refused["ipv6 /48"] = await app.check("2001:db8:6:2::1", body[3])
        await app.check("127.0.6.2", body[4])
        refused["nir"] = await app.check(
            "127.0.6.3", check_body(replace(probes[4], last_name="Autre"))
        )
        await app.check("127.0.6.4", body[5])
        refused["name and birth date"] = await app.check(
            "127.0.6.5", check_body(with_order_number(probes[5], 999))
        )
        await app.check("127.0.6.8", {"nir": "1"})
        refused["junk"] = await app.check("127.0.6.8", {"nir": "1"})
    async with in_process(limited(global_limit="1/second")) as app:
        await app.check("127.0.6.6", body[6])
        refused["global"] = await app.check("127.0.6.7", body[7])

    assert {kind: a.status_code for kind, a in refused.items()} == dict.fromkeys(refused, 429)
    envelopes = {envelope(answer) for answer in refused.values()}
    payloads = {json.dumps(payload(answer), sort_keys=True) for answer in refused.values()}
    assert len(envelopes) == 1
    assert len(payloads) == 1
    answer = refused["network"]
    assert answer.headers["retry-after"] == "60"  # constant, whatever the window
    assert not [name for name in answer.headers if "ratelimit" in name.lower()]
    text = payloads.pop()
    assert not re.search(r"\d", text), text
    assert not re.search(r"second|minute|hour|day|network|identity|global", text, re.I), text


async def test_ratelimit_settings_from_the_environment_cannot_weaken_the_limits(
    limited: Callable[..., Settings],
    bodies: list[dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    hostile = {
        "RATELIMIT_ENABLED": "false",
        "RATELIMIT_HEADERS_ENABLED": "true",
        "RATELIMIT_SWALLOW_ERRORS": "true",
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": "true",
        "RATELIMIT_STRATEGY": "fixed-window",
    }
    # slowapi (the challenge issuance limit) reads a .env in the working directory unless
    # told another file; the same variables in the environment refuse the start-up
    # (tests/app/test_rate_limit_store.py).
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in hostile.items()))
    monkeypatch.chdir(tmp_path)
    async with in_process(limited(limits_per_network="2/minute")) as app:
        answers = [await app.check("127.0.0.50", body) for body in bodies[:3]]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert not [h for a in answers for h in a.headers if h.lower().startswith("x-ratelimit")]


@pytest.fixture
def clean_redis(redis: RedisServer) -> Iterator[RedisServer]:
    """The session's redis-server, empty before and after the test."""
    flush(redis.url)
    yield redis
    flush(redis.url)


async def test_redis_keys_and_values_hold_no_personal_data(
    make_settings: Callable[..., Settings], clean_redis: RedisServer, dataset: Dataset
) -> None:
    redis = clean_redis
    probes = valid_probes(dataset.probes)[:12]
    invalid = [p for p in dataset.probes if p.expected == "invalid"][:4]
    addresses = ["127.0.7.1", "127.0.7.2", "2001:db8:42:42::5", "::ffff:198.51.100.77"]
    proxied = "203.0.113.77"
    settings = make_settings(
        rate_limit_storage=redis.url,
        limits_per_network="3/minute;20/hour",
        limits_per_identity_unproven="2/day",
        trusted_proxies="127.0.0.1/32",
    )
    async with in_process(settings) as app:
        for i, probe in enumerate(probes + invalid):
            await app.check(addresses[i % len(addresses)], check_body(probe))
        await app.check("127.0.0.1", check_body(probes[0]), headers={"x-forwarded-for": proxied})
        for probe in probes[:3]:  # past the identity limit too
            await app.check("127.0.7.9", check_body(probe))
        for probe in probes[3:6]:  # the proven class's buckets and the replay set
            await app.check("127.0.7.10", in_class("proven", check_body(probe), dataset))

    stored = list(keyspace(redis.url))
    assert len(stored) > 10
    assert any("/pow-spent/" in key for key, _ in stored)
    bucket_names = "|".join(re.escape(b.name) for b in RateLimits(settings).table)
    key_shape = re.compile(
        # {..} is a Redis Cluster hash tag: a sliding-window counter's two keys share a slot.
        r"selfcheck:\{?LIMITER/v1/"
        rf"(?:{bucket_names}|proven-site|proven-load|pow-spent)/[0-9a-f]{{32}}"
        r"/\d+/\d+/(?:second|minute|hour|day)\}?(?:/-?1)?"
    )
    # The request log's network-id key of the day (app/network_id.py): random, 48 h; the
    # DPO's daily outcome totals (app/outcome_totals.py), written at shutdown.
    others = r"selfcheck:netid/[\d-]{10}|selfcheck:outcomes/v1/[\d-]{10}/(affected|not_found)"
    stored = [(k, v) for k, v in stored if not re.fullmatch(others, k)]
    for key, values in stored:
        assert key_shape.fullmatch(key), key
        for value in values:
            float(value)  # moving-window entries are timestamps, nothing else
    forbidden = {proxied, "198.51.100.77", "2001:db8:42:42", *addresses}
    for probe in probes + invalid:
        compact = re.sub(r"[\s.\-]", "", probe.nir)
        upper_name = re.sub(r"[^A-Z]", "", probe.last_name.upper())
        forbidden |= {probe.nir, compact, compact[:13], probe.birth_date, probe.last_name}
        forbidden |= {upper_name, probe.birth_date.replace("-", "")}
    everything = "\n".join(key + "\n" + "\n".join(values) for key, values in stored)
    leaked = sorted(v for v in forbidden if len(v) >= 4 and v.lower() in everything.lower())
    assert not leaked


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("limits_per_network", "5/fortnight"),
        ("limits_per_network", ""),
        ("limits_per_identity", "ten per day"),
        ("global_limit", "40"),
        ("limits_per_ipv6_48", ";"),
        ("rate_limit_storage", "memcached://127.0.0.1:11211"),
        ("rate_limit_storage", "async+redis://127.0.0.1:6379"),
        ("rate_limit_storage", "127.0.0.1:6379"),
    ],
)
def test_a_limit_or_store_that_would_leave_a_bucket_unlimited_is_refused_at_start(
    make_settings: Callable[..., Settings], setting: str, value: str
) -> None:
    with pytest.raises(ValidationError, match=r"limits like|not supported"):
        make_settings(**{setting: value})


def test_memory_storage_with_several_workers_is_refused(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ValidationError, match="per process"):
        make_settings(workers=2)
    assert make_settings(workers=2, rate_limit_storage="redis://127.0.0.1:1/0").workers == 2


async def test_readyz_says_whether_limits_are_shared(
    limited: Callable[..., Settings], storage: str
) -> None:
    async with in_process(limited()) as app, app.client("127.0.0.60") as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    expected = "per-process" if storage == "memory://" else "shared"
    assert ready.json()["rate_limits"] == expected
