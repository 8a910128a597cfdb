"""Rate-limit storage keys are the documented HMACs, and change with the key.

README ("Storage keys are HMACs") and docs/OPERATIONS.md: a bucket's storage key holds
``HMAC-SHA256(subkey, value)`` (hex, 32 digits), the subkey being
``HMAC-SHA256(pepper, "patient-breach-selfcheck/subkey/rate-limit/<network|identity>")``.
The expected keys are computed here from that text, not through the service's code, so an
unkeyed digest (plain SHA-256 of the value: anyone reading Redis could brute-force the
NIRs, names, dates and addresses behind it) fails, whatever the keys' shape.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from app.admission.buckets import Admission, Stage, Subject
from app.rate_limit import RateLimits
from app.settings import Settings
from lookup_index import Identity, canonical_identity
from lookup_index.pepper import load_pepper
from tests.lookup_index.helpers import OTHER_PEPPER, PEPPER
from tests.support.dataset import Dataset
from tests.support.rate_limits import LIFTED, check_body, flush, in_process, keyspace, valid_probes
from tests.support.servers import RedisServer

ADDRESS = "127.0.60.1"
STRATEGIES: dict[str, type[RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}


def documented_mac(pepper: bytes, label: str | None, value: str) -> str:
    """The storage-key HMAC as the docs state it (``label`` None: the global key, no secret)."""
    if label is None:
        subkey = b"global"
    else:
        subkey = hmac.new(
            pepper, b"patient-breach-selfcheck/subkey/rate-limit/" + label.encode(), "sha256"
        ).digest()
    return hmac.new(subkey, value.encode(), hashlib.sha256).hexdigest()[:32]


def expected_keys(pepper: bytes, identity: Identity) -> dict[str, str]:
    """Bucket name -> HMAC of its value, for an unproven check from ADDRESS."""
    date = identity.birth_date.isoformat()
    name = identity.bucket_name or identity.last_name  # the variant-independent name form
    return {
        "net": documented_mac(pepper, "network", f"4/32:{ADDRESS}/32"),
        "v4-24": documented_mac(pepper, "network", "4/24:127.0.60.0/24"),
        "ceiling": documented_mac(pepper, None, "all"),
        "u-nir": documented_mac(pepper, "identity", f"nir:{identity.nir}"),
        "u-namebirth": documented_mac(pepper, "identity", f"namebirth:{name}|{date}"),
        "nirprefix": documented_mac(pepper, "identity", f"nirprefix:{identity.nir[:10]}"),
    }


def counted(limits: RateLimits, bucket: str, key: str) -> int:
    """How many hits the store holds under ``key`` in ``bucket``'s first limit (public API)."""
    (row,) = [b for b in limits.table if b.name == bucket]
    item: RateLimitItem = row.limits[0]
    stats = STRATEGIES[row.strategy](limits.storage).get_window_stats(item, "v1", bucket, key)
    return item.amount - stats.remaining


def one_unproven_check(limits: RateLimits, identity: Identity) -> None:
    subject = Subject(ipaddress.ip_address(ADDRESS), identity)
    assert limits.admit(Stage.NETWORK, Admission.UNPROVEN, subject)
    assert limits.admit(Stage.IDENTITY, Admission.UNPROVEN, subject)
    assert limits.spend_ceiling(Admission.UNPROVEN)


def test_each_bucket_counts_under_the_documented_hmac_of_its_value(
    make_settings: Callable[..., Settings], dataset: Dataset
) -> None:
    probe = valid_probes(dataset.probes)[0]
    identity = canonical_identity(probe.nir, probe.birth_date, probe.last_name)
    settings = make_settings(**LIFTED)
    ours, theirs = RateLimits(settings), RateLimits(settings)  # each its own memory store
    ours.bind_pepper(PEPPER)
    theirs.bind_pepper(OTHER_PEPPER)
    one_unproven_check(ours, identity)
    one_unproven_check(theirs, identity)

    keys, other_keys = expected_keys(PEPPER, identity), expected_keys(OTHER_PEPPER, identity)
    for bucket, key in keys.items():
        assert counted(ours, bucket, key) == 1, bucket
        assert counted(theirs, bucket, other_keys[bucket]) == 1, bucket
        if bucket != "ceiling":  # the global key hides nothing, so it keeps its key
            assert key != other_keys[bucket]
            assert counted(theirs, bucket, key) == 0, f"{bucket}: same key under another pepper"


def test_the_replay_set_is_keyed_by_the_documented_hmac(
    make_settings: Callable[..., Settings],
) -> None:
    limits = RateLimits(make_settings(**LIFTED))
    limits.bind_pepper(PEPPER)
    assert limits.first_use("a-solution-signature", 60)
    key = documented_mac(PEPPER, "pow-replay", "a-solution-signature")
    stats = FixedWindowRateLimiter(limits.storage).get_window_stats(
        RateLimitItemPerSecond(1, 60), "v1", "pow-spent", key
    )
    assert stats.remaining == 0


async def test_the_redis_keyspace_holds_exactly_the_documented_hmacs(
    make_settings: Callable[..., Settings], redis: RedisServer, dataset: Dataset
) -> None:
    """End to end: one check through the app; every key in Redis is one of the expected."""
    probe = valid_probes(dataset.probes)[0]
    identity = canonical_identity(probe.nir, probe.birth_date, probe.last_name)
    flush(redis.url)
    settings = make_settings(**LIFTED, rate_limit_storage=redis.url)
    try:
        async with in_process(settings) as app:
            assert (await app.check(ADDRESS, check_body(probe))).status_code == 200
        stored = [key for key, _ in keyspace(redis.url)]
    finally:
        flush(redis.url)
    keys = expected_keys(load_pepper(dataset.key), identity)
    found = {b: [k for k in stored if f"/{b}/{mac}/" in k] for b, mac in keys.items()}
    assert all(found.values()), found
    # Besides the buckets, only the day's network-id key and the DPO's daily outcome totals
    # (docs/OPERATIONS.md, Watch): named by the day and the outcome, never by an input.
    day = r"\d{4}-\d{2}-\d{2}"
    daily = re.compile(rf"selfcheck:(netid/{day}|outcomes/v1/{day}/(affected|not_found))")
    buckets = [k for k in stored if not daily.fullmatch(k)]
    assert sorted(buckets) == sorted(k for ks in found.values() for k in ks)


def test_every_store_key_carries_the_prefix_and_no_call_waits_twice() -> None:
    """The options behind the documented key shape and the bounded waits, for each scheme."""
    from redis.backoff import NoBackoff

    from app.rate_limit import STORE_PREFIX, storage_options

    assert STORE_PREFIX == "selfcheck"
    for uri in ("redis://127.0.0.1:6379/0", "redis+sentinel://127.0.0.1:26379/selfcheck"):
        options = storage_options(uri, 0.25)
        assert options["key_prefix"] == "selfcheck"
        assert options["health_check_interval"] == 0  # no extra round trip before a command
        assert isinstance(options["retry"]._backoff, NoBackoff)
        assert options["retry"].get_retries() == 0
    sentinel = storage_options("redis+sentinel://127.0.0.1:26379/selfcheck", 0.25)
    assert isinstance(sentinel["sentinel_kwargs"]["retry"]._backoff, NoBackoff)
    assert sentinel["sentinel_kwargs"]["retry"].get_retries() == 0
    assert "use_replicas" not in storage_options("redis://127.0.0.1:6379/0", 0.25)
    assert "sentinel_kwargs" not in storage_options("redis://127.0.0.1:6379/0", 0.25)


def test_a_store_password_is_a_client_option_never_for_memory(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    secret = tmp_path / "redis.password"
    generated = "not-in-the-url"  # a test value, not a credential
    secret.write_text(generated + "\n", encoding="utf-8")
    on_redis = RateLimits(
        make_settings(rate_limit_storage="redis://127.0.0.1:1/0", rate_limit_password_file=secret)
    )
    pool = on_redis.storage.storage.connection_pool
    assert pool.connection_kwargs["password"] == generated
    assert not on_redis.per_process
    in_memory = RateLimits(make_settings(rate_limit_password_file=secret))
    assert in_memory.per_process


@pytest.mark.parametrize(
    ("address", "values"),
    [
        (
            "2001:db8:1:2::5",
            {
                "net": "6/64:2001:db8:1:2::/64",
                "v6-48": "6/48:2001:db8:1::/48",
                "v6-32": "6/32:2001:db8::/32",
            },
        ),
        (  # no peer address (a Unix socket): every tier's one shared bucket, fail closed
            None,
            {
                "net": "4/32:unknown",
                "v4-24": "4/24:unknown",
                "v6-48": "6/48:unknown",
                "v6-32": "6/32:unknown",
            },
        ),
    ],
)
def test_network_tiers_count_under_the_hmac_of_their_prefix(
    make_settings: Callable[..., Settings], address: str | None, values: dict[str, str]
) -> None:
    limits = RateLimits(make_settings(**LIFTED))
    limits.bind_pepper(PEPPER)
    peer = None if address is None else ipaddress.ip_address(address)
    assert limits.admit(Stage.NETWORK, Admission.UNPROVEN, Subject(peer))
    assert limits.admit(Stage.NETWORK, Admission.PROVEN, Subject(peer))
    for bucket, value in values.items():
        assert counted(limits, bucket, documented_mac(PEPPER, "network", value)) == 1, bucket
    addr = documented_mac(PEPPER, "network", values["net"])
    assert counted(limits, "addr", addr) == 1  # the proven allowance: per subscriber too


def test_the_meters_are_keyed_like_the_buckets(make_settings: Callable[..., Settings]) -> None:
    """The per-site meter hides the site under the network key; the load meter is global."""
    from limits import RateLimitItemPerMinute

    limits = RateLimits(make_settings(**{**LIFTED, "pow_escalate_after": "60/minute"}))
    limits.bind_pepper(PEPPER)
    limits.count_proven(Subject(ipaddress.ip_address("192.0.2.9")))
    assert limits.spend_ceiling(Admission.PROVEN)
    meter = SlidingWindowCounterRateLimiter(limits.storage)

    def count(name: str, item: RateLimitItem, key: str) -> int:
        return item.amount - meter.get_window_stats(item, "v1", name, key).remaining

    site = documented_mac(PEPPER, "network", "4/24:192.0.2.0/24")
    assert count("proven-site", RateLimitItemPerMinute(60 * 1024), site) == 1
    capacity = int(limits._proven_capacity)
    load = documented_mac(PEPPER, None, "all")
    assert count("proven-load", RateLimitItemPerMinute(capacity * 1024), load) == 1


def test_no_key_is_computed_before_the_pepper_is_bound(
    make_settings: Callable[..., Settings],
) -> None:
    limits = RateLimits(make_settings(**LIFTED))
    with pytest.raises(RuntimeError, match=r"^rate limits used before bind_pepper\(\)$"):
        limits.admit(Stage.NETWORK, Admission.UNPROVEN, Subject(ipaddress.ip_address(ADDRESS)))


def test_the_challenge_issuance_counts_under_the_documented_network_hmac(
    make_settings: Callable[..., Settings],
) -> None:
    """GET /v1/challenge's per-network limit (slowapi, app/admission/issuance.py) is given
    ``RateLimits.network_key`` as its key: the same keyed HMAC as the network buckets."""
    ours, theirs = RateLimits(make_settings(**LIFTED)), RateLimits(make_settings(**LIFTED))
    ours.bind_pepper(PEPPER)
    theirs.bind_pepper(OTHER_PEPPER)
    value = "4/32:192.0.2.9/32"
    assert ours.network_key(value) == documented_mac(PEPPER, "network", value)
    assert theirs.network_key(value) == documented_mac(OTHER_PEPPER, "network", value)
    assert ours.network_key(value) != theirs.network_key(value)
