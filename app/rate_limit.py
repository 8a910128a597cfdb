"""Runs the admission table (``app.admission.buckets``) with ``limits`` strategies on one store.

slowapi does not run /v1/check: its decorator keys a request before the body is read,
so it cannot know a request's admission class (the proof of work is in the body) nor
tell junk from a check. ``limits``, its engine, runs the table through its public API;
slowapi keeps the challenge issuance limit (``app.admission.issuance``). Every storage
key is an HMAC: no address, NIR, name or date ever reaches the store. Storage errors are never
swallowed and never fall back to per-process memory: the caller answers 503 instead of
checking unlimited (fail closed). Every call here blocks: run it in a worker thread.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from app.admission.buckets import (
    Admission,
    Bucket,
    Stage,
    Strategy,
    Subject,
    bucket_table,
    site,
)
from app.admission.gate import RefusedNetworks
from app.errors import Unavailable
from app.limit_syntax import parse_limits, storage_scheme
from app.request_note import note_refusal
from lookup_index import KeyMaterial, derive_subkey

if TYPE_CHECKING:  # settings validate with the helpers below, so no import at run time
    from app.settings import Settings

#: Prefix of every key in a shared store, so a Redis shared with other apps stays tidy.
STORE_PREFIX = "selfcheck"
#: Version of the key scheme: bump it when key derivation changes, so old counters never mix in.
KEY_PREFIX = "v1"
#: What a failing store raises through ``limits`` and redis-py (cluster errors are not RedisError).
STORE_ERRORS: tuple[type[Exception], ...] = (StorageError, RedisError, RedisClusterException)


class StorageUnavailable(Unavailable):
    """The rate-limit store failed or did not answer in time: the uniform 503 (fail closed)."""

    what_failed = "rate-limit store unavailable"
    cause = "store"


def storage_options(uri: str, timeout: float) -> dict[str, Any]:
    """Options for ``limits.storage.storage_from_string``: errors raised, every wait bounded.

    ``timeout`` bounds each connect and each command. Without it redis-py waits 5 s per
    socket operation and, for Sentinel and Cluster clients, retries up to 10 times with
    backoff (a Cluster client refreshes its slot map after a node error by itself, so it
    needs no retry either): a hung Redis would hold a request, and a thread, for a minute.
    """
    scheme = storage_scheme(uri)
    options: dict[str, Any] = {"wrap_exceptions": True}
    if scheme == "memory":
        return options
    sockets = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    # No retry, and no backoff: a hung Redis costs one timeout, never several. The Retry
    # object still lists timeouts and connection errors, because redis-py closes the
    # connection only for the errors its Retry handles; a connection left open after a
    # timeout would hand the late reply to the next command (Sentinel connections do not
    # close themselves). A pooled connection broken by a restart is replaced at checkout.
    options |= sockets | {
        "key_prefix": STORE_PREFIX,
        "health_check_interval": 0,
        "retry": Retry(NoBackoff(), 0),
    }
    if scheme == "redis+sentinel":
        # limits hands redis-py an explicit (empty) sentinel_kwargs, so the connections to
        # the sentinels would otherwise keep redis-py's 5 s timeouts and 10 retries.
        options["sentinel_kwargs"] = sockets | {"retry": Retry(NoBackoff(), 0)}
        # Counters are read where they are written: a lagging replica would under-count.
        options["use_replicas"] = False
    return options


class RateLimits:
    """Owns the store, the strategies and the bucket table; one per app (so per process)."""

    def __init__(self, settings: Settings) -> None:
        self.per_process = storage_scheme(settings.rate_limit_storage) == "memory"
        self.table: tuple[Bucket, ...] = bucket_table(settings)
        options = storage_options(
            settings.rate_limit_storage, settings.rate_limit_timeout_ms / 1000
        )
        password = settings.rate_limit_password()
        if password is not None and not self.per_process:
            # A client option, not part of the URL: the URL may be logged or shown, this never.
            options["password"] = password
        storage = storage_from_string(settings.rate_limit_storage, **options)
        if not isinstance(storage, Storage):  # an async URI (async+redis://) is refused earlier
            raise TypeError("rate-limit storage must be synchronous")
        self.storage: Storage = storage
        self._strategies: dict[Strategy, RateLimiter] = {
            "moving-window": MovingWindowRateLimiter(self.storage),
            "sliding-window-counter": SlidingWindowCounterRateLimiter(self.storage),
            "fixed-window": FixedWindowRateLimiter(self.storage),
        }
        self._escalate_after = parse_limits(settings.pow_escalate_after)[0]
        #: Addresses the unproven network tiers refused, until their window has room: the
        #: NetworkGate middleware answers them without the full path (app/admission/gate.py).
        self.refused_networks = RefusedNetworks()
        self._secrets: dict[str, bytes] = {}

    def bind_pepper(self, pepper: KeyMaterial) -> None:
        """Derive the HMAC keys for storage keys (at start-up, once the key is opened).

        They change only with the pepper, far less often than the longest window. With
        an HSM they are two HMACs in the token, then kept in memory (docs/OPERATIONS.md).
        """
        self._secrets = {
            "network": derive_subkey(pepper, "rate-limit/network"),
            "identity": derive_subkey(pepper, "rate-limit/identity"),
            "global": b"global",  # nothing to hide: one key for the whole deployment
            "replay": derive_subkey(pepper, "rate-limit/pow-replay"),
        }

    def _mac(self, secret: str, text: str) -> str:
        if not self._secrets:
            raise RuntimeError("rate limits used before bind_pepper()")
        return hmac.new(self._secrets[secret], text.encode(), hashlib.sha256).hexdigest()[:32]

    def network_key(self, value: str) -> str:
        """The storage key of a network value (an HMAC): for limits run outside the table."""
        return self._mac("network", value)

    def _keyed(self, bucket: Bucket, subject: Subject) -> str | None:
        value = bucket.key(subject)
        return None if value is None else self._mac(bucket.secret, value)

    def _buckets(self, stage: Stage, admission: Admission) -> list[Bucket]:
        return [b for b in self.table if b.stage == stage and b.applies_to(admission)]

    def _run(self, stage: Stage, admission: Admission, subject: Subject, *, spend: bool) -> bool:
        try:
            for bucket in self._buckets(stage, admission):
                key = self._keyed(bucket, subject)
                if key is None:
                    continue
                strategy = self._strategies[bucket.strategy]
                for item in bucket.limits:
                    counted = strategy.hit if spend else strategy.test
                    if not counted(item, KEY_PREFIX, bucket.name, key):
                        note_refusal(bucket.name, bucket.admission.value)
                        if stage is Stage.NETWORK and admission is Admission.UNPROVEN:
                            stats = strategy.get_window_stats(item, KEY_PREFIX, bucket.name, key)
                            until = stats.reset_time
                            self.refused_networks.note(subject.address, until, bucket.name)
                        return False
        except STORE_ERRORS as exc:
            raise StorageUnavailable from exc
        return True

    def admit(self, stage: Stage, admission: Admission, subject: Subject) -> bool:
        """Count the request in every bucket of ``stage`` for its class; False at the first full.

        Buckets before the full one keep the hit: a client hammering a full bucket spends
        its own allowance in the others, never anyone else's.
        """
        return self._run(stage, admission, subject, spend=True)

    def ceiling_open(self, admission: Admission) -> bool:
        """Whether the class's global ceiling has room, without spending it."""
        return self._run(Stage.CEILING, admission, Subject(None), spend=False)

    def spend_ceiling(self, admission: Admission) -> bool:
        """Spend the ceiling: called only by a request about to be hashed."""
        spent = self._run(Stage.CEILING, admission, Subject(None), spend=True)
        if spent and admission is Admission.PROVEN:
            self._measure("proven-load", "all", self._proven_capacity, hit=True)
        return spent

    @property
    def _proven_capacity(self) -> float:
        """What the proven ceiling admits per minute."""
        ceiling = next(b for b in self.table if b.name == "ceiling-p").limits[0]
        return ceiling.amount * 60 / ceiling.get_expiry()

    def _measure(self, name: str, value: str, per_minute: float, *, hit: bool) -> int:
        """Hit or read a per-minute meter wide enough never to fill; returns its count."""
        item = RateLimitItemPerMinute(max(1, int(per_minute)) * 1024)
        strategy = self._strategies["sliding-window-counter"]
        key = self._mac("network" if name != "proven-load" else "global", value)
        try:
            if hit:
                strategy.hit(item, KEY_PREFIX, name, key)
                return 0
            stats = strategy.get_window_stats(item, KEY_PREFIX, name, key)
        except STORE_ERRORS as exc:
            raise StorageUnavailable from exc
        return item.amount - stats.remaining

    def proven_load(self) -> float:
        """Share of the proven ceiling used over the last minute (feeds the cost step)."""
        used = self._measure("proven-load", "all", self._proven_capacity, hit=False)
        return used / self._proven_capacity

    def first_use(self, token: str, ttl_s: int) -> bool:
        """True the first time ``token`` is seen within ``ttl_s`` (the proof-of-work replay set).

        A fixed window of one hit per TTL: the first hit creates the key with the TTL as
        expiry, every later one is refused, on any store ``limits`` supports.
        """
        once = RateLimitItemPerSecond(1, max(1, ttl_s))
        try:
            return self._strategies["fixed-window"].hit(
                once, KEY_PREFIX, "pow-spent", self._mac("replay", token)
            )
        except STORE_ERRORS as exc:
            raise StorageUnavailable from exc

    # --- per-network cost escalation of the proven class ---------------------------------
    def _escalation_rate(self) -> float:
        rate = self._escalate_after
        return rate.amount * 60 / rate.get_expiry()

    def count_proven(self, subject: Subject) -> None:
        """Measure one proven check from the subject's site (IPv4 /24, IPv6 /48)."""
        value = site(subject)
        if value is not None:
            self._measure("proven-site", value, self._escalation_rate(), hit=True)

    def network_step(self, subject: Subject) -> int:
        """Extra cost steps for this site: +1 past the escalation rate, +1 each time it doubles."""
        value = site(subject)
        if value is None:
            return 0
        count = self._measure("proven-site", value, self._escalation_rate(), hit=False)
        extra = 0
        threshold = self._escalation_rate()
        while count >= threshold and extra < 16:
            extra += 1
            threshold *= 2
        return extra

    def storage_ready(self) -> bool:
        """One bounded round trip to the store (blocking: call it from a thread)."""
        try:
            return bool(self.storage.check())
        except Exception:  # any failure of the store means "not ready"
            return False
