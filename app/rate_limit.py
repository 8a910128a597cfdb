"""Anti-enumeration limits: per client network, per target identity, and global.

slowapi (with the ``limits`` engine) guards the route by network and globally;
its checks run in the route's synchronous wrapper, so in the thread pool, after
the body-limit middleware has buffered the body and before the body is parsed.
The per-identity buckets need the validated body, which slowapi's key functions
cannot read, so they use ``limits`` directly on the same storage. Every storage
key is an HMAC: no address, NIR, name or date ever reaches the store. Storage
errors are never swallowed and never fall back to per-process memory: the route
answers 503 instead of checking unlimited (fail closed).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from limits.errors import StorageError
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import Request

from app.client_address import IPAddress, client_ip, network_of, wide_network_of
from app.errors import RateLimited, Unavailable
from app.limit_syntax import parse_limits, storage_scheme
from app.settings import Settings
from lookup_index import Identity, derive_subkey

F = TypeVar("F", bound=Callable[..., Any])

#: slowapi reads a ``.env`` from the working directory unless given a file: give it an empty one.
_EMPTY_CONFIG = Path(__file__).with_name("slowapi-empty.env")
#: Prefix of every key in a shared store, so a Redis shared with other apps stays tidy.
STORE_PREFIX = "selfcheck"
#: Version of the key scheme: bump it when key derivation changes, so old counters never mix in.
KEY_PREFIX = "v1"
#: What a failing store raises through ``limits`` and redis-py (cluster errors are not RedisError).
STORE_ERRORS: tuple[type[Exception], ...] = (StorageError, RedisError, RedisClusterException)
_SCOPE_CLIENT_KEY = "selfcheck.client_ip"
_UNKNOWN = "unknown"


class StorageUnavailable(Unavailable):
    """The rate-limit store failed or did not answer in time: the uniform 503 (fail closed)."""

    what_failed = "rate-limit store unavailable"


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
    """Owns the limiter and its storage; one per app (so one per worker process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.per_process = storage_scheme(settings.rate_limit_storage) == "memory"
        self._network_limits = settings.limits_per_network
        self._wide_network_limits = settings.limits_per_ipv6_48
        self._global_limits = settings.global_limit
        for value in (self._network_limits, self._wide_network_limits, self._global_limits):
            parse_limits(value)  # Settings checked them already; never hand slowapi a bad one
        self._identity_limits = parse_limits(settings.limits_per_identity)
        options = storage_options(
            settings.rate_limit_storage, settings.rate_limit_timeout_ms / 1000
        )
        self.limiter = Limiter(
            key_func=self._network_key,
            storage_uri=settings.rate_limit_storage,
            storage_options=options,
            strategy="moving-window",
            headers_enabled=False,
            swallow_errors=False,
            in_memory_fallback_enabled=False,
            key_prefix=KEY_PREFIX,
            key_style="endpoint",
            config_filename=str(_EMPTY_CONFIG),
        )
        self._pin_limiter_config()
        self.storage: Storage = self.limiter.limiter.storage
        self._identity_strategy = MovingWindowRateLimiter(self.storage)
        self._network_key_secret = b""
        self._identity_key_secret = b""

    def _pin_limiter_config(self) -> None:
        """Undo what slowapi took from RATELIMIT_* environment variables.

        slowapi reads its config file *and* the process environment; none of it may turn
        limits off, swallow storage errors, fall back to per-process memory, add headers
        that state a limit, or add limits we did not declare.
        """
        limiter = self.limiter
        limiter.enabled = True
        limiter._headers_enabled = False
        limiter._swallow_errors = False
        limiter._in_memory_fallback_enabled = False
        limiter._in_memory_fallback = []
        limiter._fallback_limiter = None
        limiter._storage_dead = False
        limiter._default_limits = []
        limiter._application_limits = []
        limiter._key_prefix = KEY_PREFIX
        limiter._auto_check = True

    def bind_pepper(self, pepper: bytes) -> None:
        """Derive the HMAC keys for storage keys (at start-up, once the pepper is read).

        They change only with the pepper, far less often than the longest window.
        """
        self._network_key_secret = derive_subkey(pepper, "rate-limit/network")
        self._identity_key_secret = derive_subkey(pepper, "rate-limit/identity")

    @staticmethod
    def _mac(secret: bytes, text: str) -> str:
        if not secret:
            raise RuntimeError("rate limits used before bind_pepper()")
        return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]

    # --- slowapi key functions (called with the request, before the body is parsed) --------
    def _address(self, request: Request) -> IPAddress | None:
        scope = request.scope
        if _SCOPE_CLIENT_KEY not in scope:
            scope[_SCOPE_CLIENT_KEY] = client_ip(scope, self.settings.trusted_proxies)
        return cast("IPAddress | None", scope[_SCOPE_CLIENT_KEY])

    def _network_key(self, request: Request) -> str:
        # Requests without a peer address (e.g. a Unix socket) share one bucket: fail closed.
        address = self._address(request)
        network = _UNKNOWN if address is None else network_of(address)
        return "net:" + self._mac(self._network_key_secret, network)

    def _wide_network_key(self, request: Request) -> str:
        address = self._address(request)
        wide = None if address is None else wide_network_of(address)
        return "net48:" + self._mac(self._network_key_secret, wide or _UNKNOWN)

    def _is_not_ipv6(self, request: Request) -> bool:
        address = self._address(request)
        return address is None or wide_network_of(address) is None

    @staticmethod
    def _global_key(request: Request) -> str:
        return "global"

    def guard(self, endpoint: F) -> F:
        """Decorate a synchronous route with the per-network, per-/48 and global limits.

        slowapi evaluates them in the order added and stops at the first one exceeded, so
        a network already over its limit never spends the global budget of everyone else.
        A limit exceeded raises :class:`RateLimited`; store failures become
        :class:`StorageUnavailable`, whatever the client library.
        """
        guarded = self.limiter.limit(self._network_limits, key_func=self._network_key)(endpoint)
        guarded = self.limiter.limit(
            self._wide_network_limits,
            key_func=self._wide_network_key,
            exempt_when=self._is_not_ipv6,
        )(guarded)
        guarded = self.limiter.limit(self._global_limits, key_func=self._global_key)(guarded)

        @functools.wraps(guarded)
        def fail_closed(*args: Any, **kwargs: Any) -> Any:
            request = kwargs.get("request")  # FastAPI passes every parameter by keyword
            if not isinstance(request, Request):
                raise TypeError("a guarded route must take `request: Request`")
            # slowapi marks a request as checked in request.state. A server that hands every
            # request the same lifespan-state dict (asgi-lifespan does; the ASGI spec asks for
            # a copy per request) would turn the limits off after the first request.
            state = dict(request.scope.get("state") or {})
            kwargs["request"] = Request({**request.scope, "state": state}, request.receive)
            try:
                return guarded(*args, **kwargs)
            except RateLimitExceeded:
                raise RateLimited from None  # slowapi's own exception states the limit
            except STORE_ERRORS as exc:
                raise StorageUnavailable from exc

        return cast(F, fail_closed)

    # --- identity buckets (called after validation, before hashing) ------------------------
    def identity_keys(self, identity: Identity) -> tuple[str, str]:
        name_and_birth = f"{identity.last_name}|{identity.birth_date.isoformat()}"
        return (
            "nir:" + self._mac(self._identity_key_secret, identity.nir),
            "namebirth:" + self._mac(self._identity_key_secret, name_and_birth),
        )

    def hit_identity(self, identity: Identity) -> bool:
        """Count one attempt against the identity's NIR and (name, birth date) buckets."""
        keys = self.identity_keys(identity)
        try:
            for limit in self._identity_limits:
                for key in keys:
                    if not self._identity_strategy.hit(limit, KEY_PREFIX, "identity", key):
                        return False
        except STORE_ERRORS as exc:
            raise StorageUnavailable from exc
        return True

    def storage_ready(self) -> bool:
        """One bounded round trip to the store (blocking: call it from a thread)."""
        try:
            return bool(self.storage.check())
        except Exception:  # any failure of the store means "not ready"
            return False
